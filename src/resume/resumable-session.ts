import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { CopyBlock } from '../common/copy-block.js';
import { Fifo } from '../common/fifo.js';
import { onWebSocketError } from '../common/protocol-close.js';
import { resetSocket } from '../common/reset-socket.js';
import { queueable } from '../common/socket-bounds.js';
import { endTarget } from '../relay/end-target.js';
import type { PipeEnd } from '../relay/relay-pipe.js';
import { TARGET_END_TIMEOUT_MS, WS_SEND_HIGH_FRAMES, WS_SEND_HIGH_WATER } from '../relay/relay-pipe.js';
import type { RelaySetup } from '../relay/relay.service.js';
import { logSafeId } from './session-id.js';
import { SLAB_BYTES, SlabStore } from './slab-store.js';
import {
  AckScheduler,
  encodeControl,
  MARK_CONTROL,
  MARK_DATA,
  MAX_CONTROL_BYTES,
  parseControl,
  ProtocolError,
  ReplayBuffer,
  type ControlMode,
  type SessionMessage,
} from './wire.js';

/** Where a session is in its life. */
export type SessionState = 'attached' | 'detached' | 'ended';

/** What a session needs from its owner; the service implements it. */
export interface SessionHost {
  readonly windowS: number;
  /** Largest message accepted from the client, announced in the session frame. */
  readonly maxMessageBytes: number;
  /** Bytes from the target kept for replay; reading the target stops at this. */
  readonly bufferBytes: number;
  /** Starts watching a newly attached socket (keepalive pings). */
  watch(ws: WebSocket): void;
  /** True while the service drains: a detached session could never be reattached. */
  readonly draining: boolean;
  detached(session: ResumableSession): void;
  reattached(session: ResumableSession): void;
  /** The target is closed and the client is gone: release and report. */
  ended(session: ResumableSession, end: PipeEnd & { readonly expired: boolean }): void;
}

/**
 * Client bytes queued for a congested target past which the client's socket
 * is paused after all: a client keeps at most its window (1 MiB for the
 * shipped one) unacknowledged, so only one that ignores the acks gets here.
 */
export const UNACKED_UPLOAD_MAX = 8 * 1024 * 1024;

/**
 * While the target is congested, client messages smaller than half of this are
 * copied into blocks of this size rather than queued one write each: a queued
 * write costs ~150 bytes of heap whatever its size, so a client ignoring its
 * window with 1-byte messages would otherwise make UNACKED_UPLOAD_MAX bytes
 * cost a hundred times that.
 */
export const UPLOAD_BLOCK_BYTES = 64 * 1024;

const BINARY = { binary: true } as const;
const FRAGMENT = { binary: true, fin: false } as const;
const DATA_MARKER = Buffer.from([MARK_DATA]);
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Time a replaced socket gets to complete its close handshake (unless another replacement comes first). */
const REPLACED_TERMINATE_MS = 5_000;

/**
 * One resumable relay: a target connection that outlives its WebSockets.
 *
 * - target → client: every chunk read from the target goes into a replay
 *   buffer and, when attached, out on the WebSocket. Client acks trim the
 *   buffer. The target is paused while the buffer holds `bufferBytes` or the
 *   socket's send buffer is above `WS_SEND_HIGH_WATER`, so memory is bounded by
 *   the buffer (plus one read) whether attached or not.
 * - client → target: data frames are written to the target (backpressure as on
 *   a plain relay) and counted; acks go back after 64 KiB or 250 ms.
 * - A WebSocket that closes without a close frame, or with a code other than
 *   1000, detaches: the target stays open for `windowS` seconds. `attach`
 *   replays from the client's count and announces the proxy's own.
 * - Ends for good on: the client's 1000, the target's end once everything was
 *   delivered (a clean close handshake after the final close frame), window
 *   expiry, a client breaking the protocol (the proxy's own 1002, 1007, 1008,
 *   1009), or a server decision (drain, maximum age).
 */
export class ResumableSession {
  readonly shortId: string;
  readonly started = Date.now();
  private readonly out = new ReplayBuffer();
  /** End positions of the data frames the attached socket has not finished writing, oldest first. */
  private frameEnds: Fifo<number> | null = null;
  /** The attached socket's write callback: reports written positions to the slabs. */
  private onWritten: ((err?: Error) => void) | null = null;
  /** Stream position up to which data frames have been written to a client's connection (a replay writes some again). */
  private writtenTo = 0;
  /** Holds the bytes `out` refers to. */
  private readonly slabs = new SlabStore();
  private readonly acks: AckScheduler;
  private ws: WebSocket | null = null;
  /** The last replaced socket, while its 4409 close handshake runs. */
  private replaced: WebSocket | null = null;
  private unwire: (() => void) | null = null;
  private stateValue: SessionState = 'detached';
  private targetPaused = false;
  private wsPaused = false;
  /** Client bytes copied while the target is congested, not yet written to it (see UPLOAD_BLOCK_BYTES). */
  private readonly upload = new CopyBlock();
  /** After the end was decided, a client message was dropped (UNACKED_UPLOAD_MAX already queued): every later one is too. */
  private droppingUpload = false;
  /** The client broke the protocol (its frames, or a bad control frame): its upload is cut short. */
  private uploadCut = false;
  /** How the target ended (FIN or error): delivered to the client before the final close. */
  private targetDone: { readonly code: number; readonly reason: string } | null = null;
  /**
   * The socket the proxy sent its final close frame on (after every byte, while it was open). Only its
   * completed close handshake delivers the tail: a socket the client was already closing when the target
   * ended got neither the last bytes nor the final close.
   */
  private finalCloseOn: WebSocket | null = null;
  private targetClosed = false;
  /** The end, once decided; the report waits for the target to close. */
  private end: (PipeEnd & { readonly expired: boolean }) | null = null;
  private reported = false;
  private expiry: NodeJS.Timeout | null = null;

  constructor(
    readonly id: string,
    readonly setup: RelaySetup,
    readonly control: ControlMode,
    private readonly host: SessionHost,
  ) {
    this.shortId = logSafeId(id);
    this.acks = new AckScheduler((received) => this.sendControl({ type: 'ack', received } as const));
    this.wireTarget(setup.socket);
  }

  get state(): SessionState {
    return this.stateValue;
  }

  /** Bytes read from the target that the client has not acknowledged (the replay buffer). */
  get bufferedBytes(): number {
    return this.out.size;
  }

  /** Bytes received from the client (and handed to the target). */
  get receivedBytes(): number {
    return this.acks.total;
  }

  /** Bytes taken from the target for the client (not those read after the end was decided, only to see its FIN). */
  get sentBytes(): number {
    return this.out.end;
  }

  /**
   * Of `sentBytes`, those that reached the client: written to its connection, or acknowledged by it (the
   * relay's `bytesDown`). Not what waits in the replay buffer for a client that is detached and may never
   * come back; a replayed byte counts once.
   */
  get deliveredBytes(): number {
    return Math.max(this.writtenTo, this.out.start);
  }

  /** Whether a client that has received `n` bytes can be served: `n` is within what is still held. */
  canResumeFrom(n: number): boolean {
    return n >= this.out.start && n <= this.out.end;
  }

  /**
   * Attaches a WebSocket (the first one, or a reattach from byte `received`):
   * replaces any attached socket (closed 4409), sends the session frame and
   * replays what the client has not received.
   */
  attach(ws: WebSocket, received: number | null): void {
    if (this.end !== null) {
      ws.close(4404, 'unknown session');
      return;
    }
    const from = received ?? 0;
    if (!this.canResumeFrom(from)) {
      ws.close(4400, 'received count out of range');
      return;
    }
    if (this.ws) {
      const old = this.ws;
      this.release();
      // One replaced socket at a time gets its close handshake: reattaches in a row cannot pile sockets up.
      this.replaced?.terminate();
      this.replaced = old;
      old.once('close', () => {
        if (this.replaced === old) this.replaced = null;
      });
      old.close(4409, 'replaced by a newer connection');
      setTimeout(() => old.terminate(), REPLACED_TERMINATE_MS).unref();
    }
    if (this.expiry) {
      clearTimeout(this.expiry);
      this.expiry = null;
    }
    this.acked(from);
    this.ws = ws;
    const ends = new Fifo<number>();
    this.frameEnds = ends;
    this.onWritten = (err?: Error) => {
      const end = ends.shift();
      if (end === undefined) return;
      if (!err && end > this.writtenTo) this.writtenTo = end;
      if (this.frameEnds === ends) this.slabs.flushedTo(end);
    };
    this.stateValue = 'attached';
    this.wireWs(ws);
    this.host.watch(ws);
    // The target is not taking what the previous socket sent: this one's bytes
    // are not acknowledged either (or every reattach would let one more
    // window pile up in front of it).
    if (this.setup.socket.writableNeedDrain) this.targetCongested(ws);

    const session: SessionMessage = {
      type: 'session',
      id: this.id,
      windowS: this.host.windowS,
      ...(received === null ? {} : { received: this.acks.total }),
      maxMessageBytes: this.host.maxMessageBytes,
    };
    this.sendControl(session);
    this.acks.resetAcked(this.acks.total);

    const replay = this.out.chunksFrom(from);
    let end = from;
    for (let i = 0; i < replay.length; i++) {
      end += replay[i]!.length;
      this.sendData(replay[i]!, end, i === replay.length - 1 ? this.afterSend : undefined);
    }
    if (this.targetDone) this.sendFinalClose(ws, this.targetDone);
    if (received !== null) this.host.reattached(this);
    this.flow();
  }

  /**
   * Ends the session now with `code` (drain 1001, maximum age 4408; 1008 for
   * the client's bad control frame, which it ended): no reattach after this.
   */
  shutdown(code: number, reason: string, endedBy: 'server' | 'client' = 'server'): void {
    this.decideEnd({ closeCode: code, closeReason: reason, endedBy, expired: false });
    // Nobody will receive what the target sends from now on: it is left unread until the close handshake is over.
    this.pauseTarget();
    const ws = this.ws;
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) {
      // The target is ended from the socket's close event, after what the client sent.
      ws.close(code, reason);
      // Paused for a congested target (a client past its window), the socket would not read the client's
      // answer to this close (it waits behind the upload): the client would last until ws's close timeout
      // (30 s). Read on; past that bound, what comes is dropped (see onMessage).
      this.resumeClient();
    } else {
      // Detached: the client cannot finish its upload (a reset, not a FIN).
      this.release();
      resetSocket(this.setup.socket);
      this.maybeReport();
    }
  }

  /**
   * Drops the socket and the target now (a client that never answers
   * `shutdown`'s close frame, a target that never closes after its FIN); the
   * end keeps what `shutdown` said, and is reported once both have closed.
   */
  terminate(): void {
    this.ws?.terminate();
    resetSocket(this.setup.socket);
  }

  // ---- target side -------------------------------------------------------

  private wireTarget(target: Socket): void {
    const reader = this.setup.reader;
    if (reader) {
      // Dialed paused: reads start here, into the shared buffer, copied at once.
      reader.start((chunk) => this.onTargetData(chunk));
      target.resume();
    } else {
      target.on('data', (chunk: Buffer) => this.onTargetData(chunk));
    }
    target.on('drain', () => {
      this.flushUpload();
      if (target.writableNeedDrain) return;
      this.acks.release();
      this.resumeClient();
    });
    target.on('end', () => this.targetEnded(1000, 'target closed'));
    target.on('error', (err: NodeJS.ErrnoException) => this.targetEnded(1011, `target error: ${err.code ?? 'error'}`));
    target.on('close', () => {
      this.targetClosed = true;
      // Paused for a target that is gone, the WebSocket would never read the client's answer to the close
      // frame (it waits behind the upload the target never took): the session would last until ws's close
      // timeout. Read on; those messages are dropped (the target is destroyed).
      this.resumeClient();
      this.targetEnded(1000, 'target closed');
      this.maybeReport();
    });
  }

  private onTargetData(chunk: Buffer): void {
    // After the end is decided nobody will receive it: read on only to see the target's FIN.
    if (this.end) return;
    const base = this.out.end;
    const kept = this.slabs.append(chunk);
    for (let i = 0; i < kept.length; i++) this.out.push(kept[i]!);
    const full = this.out.size >= this.host.bufferBytes || this.slabsOverBound;
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      // Frames count too: a target sending 1-byte segments makes a frame (and a queued write) per byte.
      const busy = full || ws.bufferedAmount + chunk.length >= WS_SEND_HIGH_WATER || this.frameEnds!.length >= WS_SEND_HIGH_FRAMES;
      // Paused for either reason, the last frame sent carries the retry:
      // once it is flushed the socket is no longer busy, and an ack that
      // came before it finds flow() waiting on it.
      if (busy) this.pauseTarget();
      let end = base;
      for (let i = 0; i < kept.length; i++) {
        end += kept[i]!.length;
        this.sendData(kept[i]!, end, busy && i === kept.length - 1 ? this.afterSend : undefined);
      }
    } else if (full) {
      this.pauseTarget();
    }
  }

  private targetEnded(code: number, reason: string): void {
    if (this.targetDone) return;
    this.targetDone = { code, reason };
    if (this.end) return;
    const ws = this.ws;
    // Every chunk is already queued on the socket: the close frame follows them.
    if (ws && ws.readyState === WebSocket.OPEN) this.sendFinalClose(ws, this.targetDone);
  }

  /** Closes `ws` (open, every byte read already queued on it) with the target's end: the tail's last frame. */
  private sendFinalClose(ws: WebSocket, done: { readonly code: number; readonly reason: string }): void {
    this.finalCloseOn = ws;
    ws.close(done.code, done.reason);
  }

  /** Reads the client's socket again if it was paused for a congested target. */
  private resumeClient(): void {
    if (!this.wsPaused) return;
    this.wsPaused = false;
    this.ws?.resume();
  }

  private pauseTarget(): void {
    if (!this.targetPaused) {
      this.targetPaused = true;
      this.setup.socket.pause();
    }
  }

  /**
   * Resumes reading the target when the buffer is down to half and the socket
   * (if any) is not backed up. Half, not merely below the limit: resumed per
   * ack, the proxy would read and send one small chunk per ack, and each of
   * those wakes all three processes. Called on acks, on the send callback of the frame
   * sent last before a pause, on attach and on detach: whichever comes last
   * finds both conditions met.
   */
  private flow(): void {
    if (!this.targetPaused || this.end || this.targetClosed) return;
    if (this.out.size > this.host.bufferBytes / 2 || this.slabsOverBound) return;
    const ws = this.ws;
    if (ws && (ws.bufferedAmount >= WS_SEND_HIGH_WATER || (this.frameEnds?.length ?? 0) >= WS_SEND_HIGH_FRAMES)) return;
    this.targetPaused = false;
    this.setup.socket.resume();
  }

  /**
   * The held slabs take more than the buffer bound plus the two partly used
   * ones a full buffer can span: a client replacing its socket byte by byte
   * would otherwise hold a whole slab per byte while `out.size` stays small.
   */
  private get slabsOverBound(): boolean {
    return this.slabs.heldBytes > this.host.bufferBytes + 2 * SLAB_BYTES;
  }

  private readonly afterSend = (err?: Error): void => {
    if (!err) this.flow();
  };

  // ---- client side -------------------------------------------------------

  private wireWs(ws: WebSocket): void {
    const onMessage = (data: Buffer, isBinary: boolean): void => this.onMessage(ws, data, isBinary);
    const onClose = (code: number, reason: Buffer): void => this.onClose(ws, code, reason.toString());
    ws.on('message', onMessage);
    ws.on('close', onClose);
    const offError = onWebSocketError(ws, (code, reason) => this.violated(ws, code, reason));
    this.unwire = () => {
      ws.off('message', onMessage);
      ws.off('close', onClose);
      // Keep an error listener: a detached socket may still fail.
      offError();
      ws.on('error', () => ws.terminate());
    };
  }

  /** Forgets the attached socket (no more frames from it count). */
  private release(): void {
    // A socket not yet closed may still be writing from the slabs.
    if (this.ws && this.ws.readyState !== WebSocket.CLOSED) this.slabs.disown();
    else this.slabs.socketClosed();
    this.frameEnds = null;
    this.unwire?.();
    this.unwire = null;
    this.resumeClient();
    this.ws = null;
    this.acks.stop();
  }

  private onMessage(ws: WebSocket, data: Buffer, isBinary: boolean): void {
    if (ws !== this.ws) return;
    let payload: Buffer;
    if (this.control === 'text') {
      if (!isBinary) return this.onControl(data);
      payload = data;
    } else {
      if (!isBinary || data.length === 0) return this.protocolError('expected a marked binary frame');
      if (data[0] === MARK_CONTROL) return this.onControl(data.subarray(1));
      if (data[0] !== MARK_DATA) return this.protocolError('unknown frame marker');
      payload = data.subarray(1);
    }
    const target = this.setup.socket;
    if (target.destroyed || payload.length === 0) return;
    // Read on after the end was decided (shutdown's close frame) to reach the client's answer, never paused
    // again: past what a paused client would have had queued, the rest is dropped, all of it (the target gets
    // a prefix of the upload, never one with a hole).
    if (this.end !== null && (this.droppingUpload || (this.droppingUpload = target.writableLength + this.upload.used > UNACKED_UPLOAD_MAX))) return;
    this.acks.add(payload.length);
    if (this.upload.used === 0 && !target.writableNeedDrain) {
      if (!target.write(queueable(target, payload))) this.targetCongested(ws);
      return;
    }
    // Congested: what waits in front of the target costs its bytes, not a write per message.
    if (payload.length >= UPLOAD_BLOCK_BYTES / 2) {
      this.flushUpload();
      target.write(payload);
    } else {
      if (!this.upload.fits(payload.length)) {
        this.flushUpload();
        this.upload.start(UPLOAD_BLOCK_BYTES);
      }
      this.upload.append(payload);
    }
    this.targetCongested(ws);
  }

  /** Writes the block of copied client bytes, if any, to the target (after everything written before). */
  private flushUpload(): void {
    const copied = this.upload.take();
    if (copied !== null && !this.setup.socket.destroyed) this.setup.socket.write(copied);
  }

  /**
   * The target is not taking the client's bytes. Its acks are held, so the
   * client stops sending once its window is out; the socket is still read, so
   * the client's acks of what the target sends still arrive. Pausing the
   * socket instead deadlocked a relay that is busy both ways (an echo): the
   * target waits for the proxy to read it, the proxy for the client's acks,
   * and those for the proxy to read the socket. Only a client that ignores
   * its window gets the socket paused.
   */
  private targetCongested(ws: WebSocket): void {
    this.acks.hold();
    if (!this.wsPaused && this.end === null && this.setup.socket.writableLength + this.upload.used > UNACKED_UPLOAD_MAX) {
      this.wsPaused = true;
      ws.pause();
    }
  }

  private onControl(data: Buffer): void {
    // Measured before it is parsed: a megabyte of nested brackets would hold the event loop for a second.
    if (data.length > MAX_CONTROL_BYTES) return this.protocolError('control frame too large');
    let message;
    try {
      message = parseControl(decoder.decode(data));
    } catch (err) {
      return this.protocolError(err instanceof ProtocolError ? err.message : 'control frame is not UTF-8');
    }
    if (message === null) return;
    if (message.type !== 'ack') return this.protocolError('unexpected control message');
    if (message.received > this.out.end) return this.protocolError('ack beyond the bytes sent');
    if (message.received > this.out.start) {
      this.acked(message.received);
      this.flow();
    }
  }

  /** The client has every byte before `n`: drop them from the replay buffer. */
  private acked(n: number): void {
    this.out.ackTo(n);
    this.slabs.releaseBefore(this.out.start);
  }

  private protocolError(reason: string): void {
    this.uploadCut = true;
    this.shutdown(1008, reason, 'client');
  }

  /**
   * The client's frames broke the WebSocket protocol and `ws` has already sent
   * its close frame (`code`): the session ends as on a bad control frame, and
   * its target from the socket's close event. Detaching would hold the target
   * and the slot for a client that treats these codes as final.
   */
  private violated(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.uploadCut = true;
    this.decideEnd({ closeCode: code, closeReason: reason, endedBy: 'client', expired: false });
    this.pauseTarget();
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.release();
    const target = this.setup.socket;
    if (this.end) {
      // The upload was cut short (the client vanished without answering the close, broke the protocol, or a
      // message of it was dropped): the target gets a reset, not a FIN that would pass its prefix for the whole.
      if (code === 1006 || this.uploadCut || this.droppingUpload) {
        resetSocket(target);
        this.maybeReport();
        return;
      }
      // A server decision: what the client sent reaches the target before the FIN.
      this.flushUpload();
      endTarget(target, TARGET_END_TIMEOUT_MS);
      this.maybeReport();
      return;
    }
    if (this.targetDone && this.finalCloseOn === ws && code !== 1006) {
      // The final close frame came after every byte, and the handshake completed. (A socket the client was
      // already closing when the target ended got neither: its close detaches, or ends the session on 1000.)
      this.decideEnd({ closeCode: this.targetDone.code, closeReason: this.targetDone.reason, endedBy: 'target', expired: false });
      target.destroy();
      this.maybeReport();
      return;
    }
    if (code === 1000) {
      this.decideEnd({ closeCode: code, closeReason: reason, endedBy: 'client', expired: false });
      this.flushUpload();
      endTarget(target, TARGET_END_TIMEOUT_MS);
      this.maybeReport();
      return;
    }
    this.detach();
  }

  private detach(): void {
    if (this.host.draining) {
      // Upgrades are refused while draining: nobody could reattach.
      this.shutdown(1001, 'server shutting down');
      return;
    }
    this.stateValue = 'detached';
    this.host.detached(this);
    this.expiry = setTimeout(() => this.expire(), this.host.windowS * 1000);
    this.expiry.unref();
    this.flow();
  }

  private expire(): void {
    this.expiry = null;
    if (this.end) return;
    this.decideEnd({ closeCode: 1006, closeReason: 'resume window expired', endedBy: 'server', expired: true });
    // The client never came back to finish its upload: a reset, not a FIN.
    resetSocket(this.setup.socket);
    this.maybeReport();
  }

  // ---- framing -----------------------------------------------------------

  /** Sends the stream's bytes up to position `end`; their slab is recycled only after this write completes. */
  private sendData(chunk: Uint8Array, end: number, cb?: (err?: Error) => void): void {
    const ws = this.ws;
    const written = this.onWritten;
    if (!ws || ws.readyState !== WebSocket.OPEN || !written) return;
    if (this.control === 'binary') ws.send(DATA_MARKER, FRAGMENT);
    this.frameEnds!.push(end);
    ws.send(
      chunk,
      BINARY,
      cb === undefined
        ? written
        : (err?: Error) => {
            written(err);
            cb(err);
          },
    );
  }

  private sendControl(message: Parameters<typeof encodeControl>[0]): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const frame = encodeControl(message, this.control);
    if (typeof frame === 'string') ws.send(frame);
    else ws.send(frame, BINARY);
  }

  // ---- ending ------------------------------------------------------------

  private decideEnd(end: PipeEnd & { readonly expired: boolean }): void {
    if (this.end) return;
    this.end = end;
    this.stateValue = 'ended';
    if (this.expiry) {
      clearTimeout(this.expiry);
      this.expiry = null;
    }
  }

  private maybeReport(): void {
    if (this.reported || !this.end || !this.targetClosed || this.ws !== null) return;
    this.reported = true;
    this.acks.stop();
    this.slabs.releaseAll();
    this.host.ended(this, this.end);
  }
}
