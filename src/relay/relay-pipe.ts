import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { endTarget } from './end-target.js';
import { resetSocket } from '../common/reset-socket.js';
import { queueable } from '../common/socket-bounds.js';
import { Fifo } from '../common/fifo.js';
import { onWebSocketError } from '../common/protocol-close.js';
import type { RelayClosedEvent } from '../common/events.js';

/**
 * Largest amount the proxy lets pile up in a WebSocket's send buffer before it
 * stops reading the target. Large enough to keep a fast link busy between
 * flushes, small enough that a browser that stops reading costs a few hundred
 * KiB at most.
 */
export const WS_SEND_HIGH_WATER = 256 * 1024;

/**
 * Most frames the proxy lets wait in a WebSocket's send buffer before it stops
 * reading the target, whatever their size. A queued frame costs a few hundred
 * bytes of heap (its write requests, header, buffer and callback) while
 * `bufferedAmount` counts its payload and header only: a target sending 1-byte
 * segments to a client that stops reading would pile up ~87 000 frames (tens
 * of MiB) before WS_SEND_HIGH_WATER is reached. Bulk traffic queues a few large
 * frames and never gets near this.
 */
export const WS_SEND_HIGH_FRAMES = 1024;

/** How long a target has to close after the client's clean close before it is destroyed. */
export const TARGET_END_TIMEOUT_MS = 30_000;

const BINARY = { binary: true } as const;

/** How a relay ended, for the end-of-relay log event. */
export interface PipeEnd {
  readonly closeCode: number;
  readonly closeReason: string;
  /** Which side ended it: `client`, `target`, or `server` (drain, max age, keepalive). */
  readonly endedBy: RelayClosedEvent['endedBy'];
}

/** A running relay between one WebSocket and one TCP socket. */
export interface RelayPipe {
  /**
   * Closes the WebSocket with `code` after what is queued (every byte already
   * read from the target included), and the target with it; the target is not
   * read meanwhile.
   */
  close(code: number, reason: string): void;
  /**
   * Bytes sent to the client so far: written to its connection, not what
   * still waits in the WebSocket's send buffer (lost if the client vanishes),
   * nor what the target sends once the WebSocket is closing, which is read
   * only to see its FIN.
   */
  bytesDown(): number;
  /** Whether the client has closed and every byte it sent, and the FIN, went to the target: only the target's close is awaited. */
  settled(): boolean;
  /**
   * Drops both sockets now (a peer that does not answer `close`'s frame); the end keeps what `close` said.
   * The target is reset (RST): the client's side of the stream never ended.
   */
  terminate(): void;
  /**
   * Drops both sockets now because the client stopped answering keepalive
   * pings: the end is the server's, 1006 (no close frame went out) with `reason`.
   * The target is reset (RST), as for any client that vanished.
   */
  timedOut(reason: string): void;
}

/**
 * Copies bytes both ways between a client WebSocket and a target socket, with
 * backpressure in both directions and no per-frame work beyond the copy and a shared write callback (the bytes count):
 * - client → target: a `write` that returns false pauses the WebSocket until the
 *   target socket drains;
 * - target → client: when the WebSocket's buffer would pass WS_SEND_HIGH_WATER,
 *   or hold WS_SEND_HIGH_FRAMES frames (tiny reads), the target is paused and
 *   resumed from the send callback of that frame.
 * Closing loses nothing: a target FIN flushes every queued frame before the
 * close frame (1000); a client close frame ends the target after its pending
 * writes (TCP FIN). With a half-open target (`allowHalfOpen`, as the gateway
 * dials it), what the client sends after the target's FIN, until its answer
 * to that close frame, is still written to the target before the proxy's FIN.
 * A server's close (`close`) sends what was read from the target before it.
 *
 * A TCP FIN tells the target it has the whole upload, so the target gets one
 * only when it has: a truncated upload ends with a reset (RST, see
 * `resetSocket`) instead, so that the target (an rsync, an `nc`, a server
 * reading to EOF) cannot take a prefix for the whole. The upload is truncated
 * when the client vanishes (1006: no close frame), when its frames break the
 * WebSocket protocol (the message that broke is lost), when a client message
 * was dropped after a server's close (`dropping`), when the relay is dropped
 * (`terminate`, `timedOut`), and when the target does not take the last of it
 * in TARGET_END_TIMEOUT_MS (`endTarget`).
 */
export function pipeRelay(ws: WebSocket, target: Socket, onEnd: (end: PipeEnd) => void): RelayPipe {
  let ended: PipeEnd | null = null;
  let wsClosed = false;
  let targetClosed = false;
  let pausedWs = false;
  /** The server's close frame is out (`close`): the client is read on to its answer. */
  let closing = false;
  /** While closing, a client message was dropped (the target was not taking it): every later one is too. */
  let dropping = false;
  /** The client's frames broke the WebSocket protocol: its upload is cut short. */
  let violated = false;
  let reported = false;
  /** Target bytes written to the client's connection: not those still in the WebSocket's send buffer. */
  let bytesDown = 0;
  /**
   * Sizes of the frames handed to the WebSocket and not yet written, oldest first. Counted from their
   * write callbacks (one function for every frame, which Node batches): a client that vanishes with
   * frames still queued (up to WS_SEND_HIGH_WATER and a read) was never sent them.
   */
  const unwritten = new Fifo<number>();
  const written = (err?: Error | null): void => {
    const n = unwritten.shift();
    if (!err && n !== undefined) bytesDown += n;
  };

  const finish = (): void => {
    if (wsClosed && targetClosed && ended && !reported) {
      reported = true;
      onEnd(ended);
    }
  };
  const markEnd = (end: PipeEnd): void => {
    if (!ended) ended = end;
  };

  /** Reads the client again if it was paused for the target. */
  const resumeWs = (): void => {
    if (!pausedWs) return;
    pausedWs = false;
    ws.resume();
  };

  const writtenThenResume = (err?: Error | null): void => {
    written(err);
    if (!err && ws.readyState === WebSocket.OPEN) target.resume();
  };

  target.on('data', (chunk: Buffer) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    unwritten.push(chunk.length);
    if (ws.bufferedAmount + chunk.length >= WS_SEND_HIGH_WATER || unwritten.length >= WS_SEND_HIGH_FRAMES) {
      target.pause();
      ws.send(chunk, BINARY, writtenThenResume);
    } else {
      ws.send(chunk, BINARY, written);
    }
  });

  ws.on('message', (data: Buffer) => {
    // An empty message carries no byte. As a write it would still wait in the queue of a target that is not
    // reading, where the high-water mark (it counts bytes) never sees it: a flood of them, 6 bytes each on the
    // wire, would grow that queue without bound, the client never paused.
    if (target.destroyed || data.length === 0) return;
    // Read on after the server's close to reach the client's answer: what the target cannot take now is dropped,
    // and so is everything after it (the target gets a prefix of the upload, never one with a hole in it).
    if (closing) {
      if (dropping || (dropping = target.writableNeedDrain)) return;
      target.write(queueable(target, data));
      return;
    }
    if (!target.write(queueable(target, data)) && !pausedWs) {
      pausedWs = true;
      ws.pause();
    }
  });
  target.on('drain', () => {
    resumeWs();
  });

  target.on('end', () => {
    markEnd({ closeCode: 1000, closeReason: 'target closed', endedBy: 'target' });
    if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'target closed');
  });
  target.on('error', (err: NodeJS.ErrnoException) => {
    const reason = `target error: ${err.code ?? 'error'}`;
    markEnd({ closeCode: 1011, closeReason: reason, endedBy: 'target' });
    if (ws.readyState === WebSocket.OPEN) ws.close(1011, reason);
  });
  target.on('close', () => {
    targetClosed = true;
    // Paused for a target that is gone, the WebSocket would never read the client's answer to the
    // close frame below (it waits behind the data the target never took): the relay would last until
    // ws's close timeout. Read on; those messages are dropped.
    resumeWs();
    if (ws.readyState === WebSocket.OPEN) {
      markEnd({ closeCode: 1000, closeReason: 'target closed', endedBy: 'target' });
      ws.close(1000, 'target closed');
    } else if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
    }
    finish();
  });

  onWebSocketError(ws, (code, reason) => {
    violated = true;
    markEnd({ closeCode: code, closeReason: reason, endedBy: 'client' });
  });
  ws.on('close', (code: number, reason: Buffer) => {
    wsClosed = true;
    markEnd({ closeCode: code, closeReason: reason.toString(), endedBy: 'client' });
    if (code === 1006 || violated || dropping) {
      // The upload is cut short: the target must not take it for the whole (a reset, not a FIN).
      resetSocket(target);
    } else {
      // Pending writes reach the target before the FIN; a target that never
      // reads them, or never closes, must not hold the socket forever.
      endTarget(target, TARGET_END_TIMEOUT_MS);
    }
    finish();
  });

  return {
    // Methods, not getters: an object literal with accessors is built in dictionary mode, once per relay.
    bytesDown: () => bytesDown,
    settled: () => wsClosed && target.writableFinished,
    close(code: number, reason: string): void {
      markEnd({ closeCode: code, closeReason: reason, endedBy: 'server' });
      if (ws.readyState === WebSocket.OPEN) {
        // Read but not yet sent (held while the WebSocket was backed up): `read()` hands it to the
        // 'data' listener, ahead of the close frame. What the target sends after this is left unread
        // until the close handshake is over, then read only to see its FIN.
        target.pause();
        while (target.readableLength > 0 && target.read() !== null);
        ws.close(code, reason);
        // Paused for a target that is not taking the client's bytes, the WebSocket would not read the client's
        // answer to this close (it waits behind the upload): the client's WebSocket would last until ws's close
        // timeout (30 s). As for a target that is gone, read on.
        closing = true;
        resumeWs();
      } else if (ws.readyState === WebSocket.CONNECTING) {
        ws.close(code, reason);
      } else {
        resetSocket(target);
      }
    },
    terminate(): void {
      ws.terminate();
      resetSocket(target);
    },
    timedOut(reason: string): void {
      markEnd({ closeCode: 1006, closeReason: reason, endedBy: 'server' });
      ws.terminate();
      resetSocket(target);
    },
  };
}
