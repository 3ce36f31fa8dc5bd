import { ChurnMap } from '../../common/churn-map.js';
import { Fifo } from '../../common/fifo.js';
import {
  FLAG_BINARY,
  FLAG_END,
  FLAG_FIN,
  R,
  T,
  V2_DATA_CHUNK,
  V2_INITIAL_WINDOW,
  V2_MIN_SPLIT,
  V2_MAX_WINDOW,
  decodeFrame,
  encodeClose,
  encodeData,
  encodeFrame,
  encodeOpen,
  encodeReady,
  encodeReset,
  encodeResponse,
  encodeWindowUpdate,
  type V2OpenHead,
  type V2Ready,
  type V2ResponseHead,
  type V2StreamKind,
} from './v2.js';
import { HeldBody, SMALL_BODY_CHUNK } from '../../common/held-body.js';
import { unpinned } from '../../common/own-copy.js';
import { HeldMessages } from './held-messages.js';

/**
 * The stream engine of protocol v2, shared by the proxy and the reference
 * client (no Node APIs): stream state, per-stream credit both ways, frame
 * ordering, and validation of what the peer sends.
 *
 * Flow control (HTTP/2 style): every stream starts with `V2_INITIAL_WINDOW`
 * bytes of credit in each direction. DATA and MESSAGE payload bytes spend it;
 * the receiver gives it back with WINDOW_UPDATE as it hands bytes on to their
 * consumer. A consumer that cannot keep up calls `pause(id)`: frames still in
 * flight are held here (never more than the window), no credit goes back, and
 * every other stream goes on.
 */

/** What the mux reports. Events of one stream arrive in order; a paused stream's are held until `resume`. */
export interface V2MuxHandler {
  /** Client: the proxy's READY. */
  ready?(ready: V2Ready): void;
  /** Client: the proxy opened a stream; `ended` when nothing follows from the proxy (a request without a body). */
  open?(stream: number, head: V2OpenHead, ended: boolean): void;
  /** Proxy: the client's response head. */
  response?(stream: number, head: V2ResponseHead): void;
  data(stream: number, chunk: Uint8Array): void;
  /** The peer's side of the stream is finished. */
  end(stream: number): void;
  message(stream: number, chunk: Uint8Array, binary: boolean, fin: boolean): void;
  /** The peer's WebSocket closed. */
  close(stream: number, code: number, reason: string): void;
  /** The peer aborted the stream (its state is gone here too). */
  reset(stream: number, code: number, reason: string): void;
  /** The peer broke the protocol on this stream; it has been reset both ways. */
  malformed(stream: number, reason: string): void;
  /** A stream that was told to wait may send again. */
  writable(stream: number): void;
  /** The stream finished both ways and its state is gone. */
  done?(stream: number): void;
}

export interface V2MuxOptions {
  readonly role: 'proxy' | 'client';
  /** Sends one frame as one binary WebSocket message. */
  send(frame: Uint8Array): void;
  /** `false` while the transport's own send buffer is full; call `transportDrained()` once it is not. */
  transportReady?(): boolean;
  /** Credit this side grants per stream (at least `V2_INITIAL_WINDOW`). */
  readonly window?: number;
}

/** What a stream's consumer is handed, one at a time. */
type Received =
  | { readonly t: 'data'; readonly chunk: Uint8Array; readonly small?: HeldBody }
  | { readonly t: 'end' }
  | { readonly t: 'message'; readonly chunk: Uint8Array; readonly binary: boolean; readonly fin: boolean }
  | { readonly t: 'close'; readonly code: number; readonly reason: string };

/** What a paused stream holds: what it received, or a run of small messages handed on one by one. */
type InEvent = Received | { readonly t: 'messages'; readonly run: HeldMessages };

interface OutItem {
  readonly type: number;
  readonly flags: number;
  /** Flow-controlled payload (DATA, MESSAGE). */
  payload: Uint8Array;
  /** A frame that ends this side (END, CLOSE): sent as it is, after everything before it. */
  readonly final?: Uint8Array;
}

class MuxStream {
  /** http/websocket: the response head went (client) or came (proxy). */
  responded = false;
  /** websocket only: after 101 messages flow; after another status the body flows as DATA. */
  mode: 'bytes' | 'messages' | 'pending';
  credit = V2_INITIAL_WINDOW;
  readonly queue = new Fifo<OutItem>();
  /** A send returned false: report `writable` when it may go on. */
  blocked = false;
  /** This side asked to end (END / CLOSE queued). */
  localEnd = false;
  /** …and that frame is out. */
  localEndSent = false;
  /** Bytes the peer may still send. */
  allowance: number;
  /** Bytes handed on and not yet given back as credit. */
  consumed = 0;
  /** The peer's credit was raised from the initial window to this side's. */
  grown = false;
  paused = false;
  /** Called once this side's END is out (`whenSent`). */
  onSent: (() => void) | null = null;
  readonly inbox = new Fifo<InEvent>();
  /** Events held in `inbox`, each message of a run counted as one. */
  held = 0;
  /** The last event of `inbox` when it gathers small DATA payloads or messages (one event for a run of them). */
  smallTail: InEvent | null = null;
  remoteEnd = false;

  constructor(
    readonly id: number,
    readonly kind: V2StreamKind,
    readonly window: number,
  ) {
    this.mode = kind === 'websocket' ? 'pending' : 'bytes';
    this.allowance = V2_INITIAL_WINDOW;
  }
}

export class V2Mux {
  private readonly streams = new ChurnMap<number, MuxStream>();
  private readonly window: number;
  /** Client: the highest stream id the proxy opened (ids only grow). */
  private lastOpened = 0;
  /** Client: the proxy's READY said it takes body bytes inline in RESPONSE. */
  private inlineBody = false;
  /** Client: the proxy's READY said it returns credit by half a window, so slivers may wait (`V2_MIN_SPLIT`). */
  private minSplit = 1;
  private handler: V2MuxHandler | null = null;

  constructor(private readonly options: V2MuxOptions) {
    this.window = Math.min(V2_MAX_WINDOW, Math.max(V2_INITIAL_WINDOW, options.window ?? V2_INITIAL_WINDOW));
  }

  attach(handler: V2MuxHandler): void {
    this.handler = handler;
  }

  /** Streams with state here. */
  get size(): number {
    return this.streams.size;
  }

  has(id: number): boolean {
    return this.streams.has(id);
  }

  ids(): number[] {
    return this.streams.values().map((s) => s.id);
  }

  /** Bytes held for paused consumers and bytes waiting for credit, over all streams (diagnostics, tests). */
  buffered(): { inbound: number; outbound: number } {
    let inbound = 0;
    let outbound = 0;
    for (const s of this.streams.values()) {
      for (const ev of s.inbox) {
        if (ev.t === 'data') inbound += ev.small ? ev.small.bytes : ev.chunk.length;
        else if (ev.t === 'message') inbound += ev.chunk.length;
        else if (ev.t === 'messages') inbound += ev.run.bytes;
      }
      for (const item of s.queue) outbound += item.payload.length;
    }
    return { inbound, outbound };
  }

  /** Proxy: announces the tunnel. */
  ready(tunnelUrl: string, rawPort: number): void {
    this.options.send(encodeReady(tunnelUrl, rawPort));
  }

  /** Proxy: opens stream `id`; `end` when nothing follows from this side (a request without a body). */
  open(id: number, head: V2OpenHead, end = false): void {
    if (this.streams.has(id)) return;
    const s = new MuxStream(id, head.kind, this.window);
    this.streams.set(id, s);
    const ended = end && s.mode === 'bytes';
    if (ended) s.localEnd = s.localEndSent = true;
    this.options.send(encodeOpen(id, head, ended));
  }

  /**
   * Client: the response head of an http or websocket stream; `end` when
   * nothing follows `body`. The body's first bytes ride in the RESPONSE
   * frame when the proxy takes them and the credit allows (a small response
   * is then one frame), else they follow as DATA. `false`: stop until
   * `writable(id)`.
   */
  respond(id: number, head: V2ResponseHead, end = false, body?: Uint8Array): boolean {
    const s = this.streams.get(id);
    if (!s || s.kind === 'tcp' || s.responded || s.localEnd) return true;
    s.responded = true;
    const accepted = head.status === 101;
    if (s.kind === 'websocket') {
      s.mode = accepted ? 'messages' : 'bytes';
      // A WebSocket request has no body: once refused, the proxy's side is over.
      if (!accepted) s.remoteEnd = true;
    }
    const len = body && !accepted ? body.length : 0;
    const inline = len > 0 && this.inlineBody && len <= s.credit && len <= V2_DATA_CHUNK && this.transportReady();
    if (inline) s.credit -= len;
    this.options.send(encodeResponse(id, head, end && !accepted && (inline || len === 0), inline ? body : undefined));
    if (len > 0 && !inline) return this.data(id, body!, end);
    if (end && !accepted) s.localEnd = s.localEndSent = true;
    this.maybeDone(s);
    return s.localEnd || this.writableNow(s);
  }

  /** Stream bytes; with `end`, the last of them (the END flag rides on the last frame). `false`: stop until `writable(id)`. */
  data(id: number, chunk: Uint8Array, end = false): boolean {
    const s = this.streams.get(id);
    if (!s || s.localEnd || s.mode !== 'bytes') return true;
    if (end && chunk.length === 0) {
      this.end(id);
      return true;
    }
    for (let off = 0; off < chunk.length; off += V2_DATA_CHUNK) {
      const last = end && off + V2_DATA_CHUNK >= chunk.length;
      s.queue.push({ type: T.DATA, flags: last ? FLAG_END : 0, payload: chunk.subarray(off, Math.min(chunk.length, off + V2_DATA_CHUNK)) });
    }
    if (end) s.localEnd = true;
    this.flush(s);
    return this.writableNow(s);
  }

  /** This side of the stream is finished (after what is queued). */
  end(id: number): void {
    const s = this.streams.get(id);
    if (!s || s.localEnd || s.mode !== 'bytes') return;
    s.localEnd = true;
    s.queue.push({ type: T.DATA, flags: FLAG_END, payload: EMPTY, final: encodeData(id, EMPTY, true) });
    this.flush(s);
  }

  /** One whole WebSocket message (sent in fragments of `V2_DATA_CHUNK`). `false`: stop until `writable(id)`. */
  message(id: number, chunk: Uint8Array, binary: boolean): boolean {
    const s = this.streams.get(id);
    if (!s || s.localEnd || s.mode !== 'messages') return true;
    const bin = binary ? FLAG_BINARY : 0;
    if (chunk.length === 0) s.queue.push({ type: T.MESSAGE, flags: FLAG_FIN | bin, payload: EMPTY });
    for (let off = 0; off < chunk.length; off += V2_DATA_CHUNK) {
      const last = off + V2_DATA_CHUNK >= chunk.length;
      s.queue.push({ type: T.MESSAGE, flags: (last ? FLAG_FIN : 0) | bin, payload: chunk.subarray(off, Math.min(chunk.length, off + V2_DATA_CHUNK)) });
    }
    this.flush(s);
    return this.writableNow(s);
  }

  /** This side's WebSocket closed with `code` (after the messages queued before). */
  close(id: number, code: number, reason: string): void {
    const s = this.streams.get(id);
    if (!s || s.localEnd || s.mode !== 'messages') return;
    s.localEnd = true;
    s.queue.push({ type: T.CLOSE, flags: 0, payload: EMPTY, final: encodeClose(id, code, reason) });
    this.flush(s);
  }

  /** Aborts the stream both ways; its state is dropped. */
  reset(id: number, code: number = R.CANCEL, reason = ''): void {
    if (!this.streams.delete(id)) return;
    this.options.send(encodeReset(id, code, reason));
  }

  /** The stream is gone locally: forgotten, and reset unless it had finished both ways. */
  release(id: number): void {
    const s = this.streams.get(id);
    if (!s) return;
    if (s.localEndSent && s.remoteEnd) this.streams.delete(id);
    else this.reset(id, R.CANCEL, '');
  }

  /**
   * This side has ended (END queued) but the END, and bytes before it, still wait for the peer's credit or
   * the transport: `sent` is called once the END is out and true is returned. False when nothing of this
   * side waits (its END went, it never ended, or the stream is gone).
   */
  whenSent(id: number, sent: () => void): boolean {
    const s = this.streams.get(id);
    if (!s || !s.localEnd || s.localEndSent) return false;
    s.onSent = sent;
    return true;
  }

  /** Stop handing this stream's data on (and giving credit back) until `resume`. */
  pause(id: number): void {
    const s = this.streams.get(id);
    if (s) s.paused = true;
  }

  resume(id: number): void {
    const s = this.streams.get(id);
    if (!s || !s.paused) return;
    s.paused = false;
    this.drainInbox(s);
  }

  /** The transport's send buffer has room again: queued frames go on. */
  transportDrained(): void {
    for (const s of this.streams.values()) {
      if (this.streams.get(s.id) !== s) continue;
      if (!this.transportReady()) return;
      this.flush(s);
      this.maybeWritable(s);
    }
  }

  /** Drops every stream (the transport is gone) and returns their ids. */
  clear(): number[] {
    const ids = this.ids();
    this.streams.clear();
    return ids;
  }

  /** Feeds one binary WebSocket message from the peer. Never throws on bad input. */
  receive(bytes: Uint8Array): void {
    const d = decodeFrame(bytes);
    if (!d.ok) {
      if (d.stream !== null) this.protocolError(d.stream, d.reason);
      return;
    }
    const f = d.frame;
    const h = this.handler;
    if (!h) return;
    switch (f.type) {
      case 'ready':
        if (this.options.role !== 'client') return;
        this.inlineBody = f.ready.inlineBody;
        this.minSplit = f.ready.creditByHalf ? V2_MIN_SPLIT : 1;
        h.ready?.(f.ready);
        return;
      case 'open': {
        if (this.options.role !== 'client' || f.stream <= this.lastOpened) return;
        this.lastOpened = f.stream;
        // Each stream is a local connection on the user's machine: a proxy that opens without end is refused.
        if (this.streams.size >= MAX_CLIENT_STREAMS) {
          this.options.send(encodeReset(f.stream, R.REFUSED, 'too many streams'));
          return;
        }
        const s = new MuxStream(f.stream, f.head.kind, this.window);
        this.streams.set(f.stream, s);
        const ended = f.end && s.mode === 'bytes';
        // More credit only matters when a body follows (not for a GET).
        if (!ended) this.growWindow(s);
        h.open?.(f.stream, f.head, ended);
        if (ended && this.streams.get(f.stream) === s) this.markRemoteEnd(s);
        return;
      }
      case 'response': {
        if (this.options.role !== 'proxy') return;
        const s = this.streams.get(f.stream);
        if (!s) return;
        if (s.kind === 'tcp' || s.responded) return this.protocolError(f.stream, 'unexpected RESPONSE');
        const accepted = f.head.status === 101;
        if (accepted && f.body) return this.protocolError(f.stream, 'body on a 101 RESPONSE');
        if (f.body && !this.spend(s, f.body.length)) return;
        if (f.body && !f.end) this.growOnBody(s);
        s.responded = true;
        if (s.kind === 'websocket') {
          s.mode = accepted ? 'messages' : 'bytes';
          if (!accepted) s.localEnd = s.localEndSent = true;
        }
        h.response?.(f.stream, f.head);
        if (f.body && f.body.length > 0 && this.streams.get(f.stream) === s) this.deliver(s, { t: 'data', chunk: f.body });
        if (f.end && !accepted && this.streams.get(f.stream) === s) this.markRemoteEnd(s);
        return;
      }
      case 'data': {
        const s = this.streams.get(f.stream);
        if (!s) return;
        if (s.remoteEnd) return this.protocolError(f.stream, 'DATA after END');
        if (s.mode !== 'bytes') return this.protocolError(f.stream, 'DATA on a WebSocket stream');
        if (this.options.role === 'proxy' && s.kind !== 'tcp' && !s.responded) return this.protocolError(f.stream, 'DATA before RESPONSE');
        if (!this.spend(s, f.payload.length)) return;
        if (!f.end) this.growOnBody(s);
        if (f.payload.length > 0) this.deliver(s, { t: 'data', chunk: f.payload });
        if (f.end && this.streams.get(f.stream) === s) this.markRemoteEnd(s);
        return;
      }
      case 'message': {
        const s = this.streams.get(f.stream);
        if (!s) return;
        if (s.mode !== 'messages' || s.remoteEnd) return this.protocolError(f.stream, 'unexpected MESSAGE');
        if (!this.spend(s, f.payload.length)) return;
        this.growOnBody(s);
        // An empty fragment that does not end its message carries nothing.
        if (f.payload.length === 0 && !f.fin) return;
        this.deliver(s, { t: 'message', chunk: f.payload, binary: f.binary, fin: f.fin });
        return;
      }
      case 'close': {
        const s = this.streams.get(f.stream);
        if (!s) return;
        if (s.mode !== 'messages' || s.remoteEnd) return this.protocolError(f.stream, 'unexpected CLOSE');
        s.remoteEnd = true;
        this.deliver(s, { t: 'close', code: f.code, reason: f.reason });
        return;
      }
      case 'window': {
        const s = f.stream === 0 ? undefined : this.streams.get(f.stream);
        if (!s) return;
        s.credit += f.increment;
        if (s.credit > V2_MAX_WINDOW) {
          this.reset(s.id, R.FLOW_CONTROL_ERROR, 'window overflow');
          h.malformed(s.id, 'window overflow');
          return;
        }
        this.flush(s);
        this.maybeWritable(s);
        return;
      }
      case 'reset': {
        if (!this.streams.delete(f.stream)) return;
        h.reset(f.stream, f.code, f.reason);
        return;
      }
      case 'unknown':
        return;
    }
  }

  private transportReady(): boolean {
    return this.options.transportReady ? this.options.transportReady() : true;
  }

  /**
   * Proxy: raises the peer's credit to this side's window at the first body
   * bytes that do not end the stream, so a small response (one frame with
   * END) costs no WINDOW_UPDATE and a long one streams with the full window.
   */
  private growOnBody(s: MuxStream): void {
    if (this.options.role === 'proxy') this.growWindow(s);
  }

  /** Raises the peer's credit from the protocol's initial window to this side's window (once). */
  private growWindow(s: MuxStream): void {
    if (s.grown || s.window <= V2_INITIAL_WINDOW) return;
    s.grown = true;
    s.allowance += s.window - V2_INITIAL_WINDOW;
    this.options.send(encodeWindowUpdate(s.id, s.window - V2_INITIAL_WINDOW));
  }

  /** Charges `n` received bytes to the peer's credit; a peer over its credit gets the stream reset. */
  private spend(s: MuxStream, n: number): boolean {
    if (n <= s.allowance) {
      s.allowance -= n;
      return true;
    }
    this.reset(s.id, R.FLOW_CONTROL_ERROR, 'sent beyond the window');
    this.handler?.malformed(s.id, 'flow control violated');
    return false;
  }

  private markRemoteEnd(s: MuxStream): void {
    if (s.remoteEnd) return;
    s.remoteEnd = true;
    this.deliver(s, { t: 'end' });
  }

  private protocolError(id: number, reason: string): void {
    if (this.streams.has(id)) {
      this.reset(id, R.PROTOCOL_ERROR, reason);
      this.handler?.malformed(id, reason);
      return;
    }
    // A stream the proxy opened but the client could not read: refuse it, so the proxy is not left waiting.
    if (this.options.role === 'client' && id > this.lastOpened) {
      this.lastOpened = id;
      this.options.send(encodeReset(id, R.PROTOCOL_ERROR, reason));
    }
  }

  private deliver(s: MuxStream, ev: Received): void {
    if (!s.paused && s.inbox.length === 0) return this.dispatch(s, ev);
    // Each payload is a view of the WebSocket read it came in: a small one costs ~100 to ~340 bytes of
    // process memory with its event, and any one pins its whole read, whatever else the read held.
    const tail = s.smallTail;
    const smallData = ev.t === 'data' && ev.chunk.length < SMALL_BODY_CHUNK ? ev.chunk : null;
    // A run of small DATA payloads waits as one event, its bytes copied into a Buffer of its own.
    if (smallData && tail?.t === 'data' && tail.small) return tail.small.push(smallData);
    // Credit bounds the bytes held, not the frames: tiny or empty frames (an
    // empty MESSAGE with FIN costs none) must not pile up without end.
    if (s.held >= Math.max(MAX_HELD_EVENTS, s.window / 64)) {
      this.reset(s.id, R.FLOW_CONTROL_ERROR, 'too many frames held');
      this.handler?.malformed(s.id, 'too many frames held for a paused stream');
      return;
    }
    s.held++;
    const smallMessage = ev.t === 'message' && ev.chunk.length < SMALL_BODY_CHUNK ? ev : null;
    // So does a run of small messages, each keeping its boundary and flags.
    if (smallMessage && tail?.t === 'messages') return tail.run.push(smallMessage.chunk, smallMessage.binary, smallMessage.fin);
    let held: InEvent = ev;
    if (smallData) {
      const gathered = new HeldBody();
      gathered.push(smallData);
      held = { t: 'data', chunk: EMPTY, small: gathered };
    } else if (smallMessage) {
      const run = new HeldMessages();
      run.push(smallMessage.chunk, smallMessage.binary, smallMessage.fin);
      held = { t: 'messages', run };
    } else if (ev.t === 'data' || ev.t === 'message') {
      // A larger payload sharing its read with other frames: only its own bytes are kept.
      const own = unpinned(ev.chunk);
      if (own !== ev.chunk) held = { ...ev, chunk: own };
    }
    s.smallTail = smallData || smallMessage ? held : null;
    s.inbox.push(held);
  }

  private drainInbox(s: MuxStream): void {
    while (!s.paused && s.inbox.length > 0 && this.streams.get(s.id) === s) {
      const ev = s.inbox.peek()!;
      // A run being handed on takes no more messages.
      if (ev === s.smallTail) s.smallTail = null;
      s.held--;
      if (ev.t !== 'messages') {
        s.inbox.shift();
        this.dispatch(s, ev);
        continue;
      }
      const message = ev.run.shift()!;
      if (ev.run.count === 0) s.inbox.shift();
      this.dispatch(s, message);
    }
  }

  private dispatch(s: MuxStream, ev: Received): void {
    const h = this.handler!;
    switch (ev.t) {
      case 'data': {
        const chunk = ev.small?.take() ?? ev.chunk;
        h.data(s.id, chunk);
        this.consumed(s, chunk.length);
        return;
      }
      case 'message':
        h.message(s.id, ev.chunk, ev.binary, ev.fin);
        this.consumed(s, ev.chunk.length);
        return;
      case 'end':
        h.end(s.id);
        this.maybeDone(s);
        return;
      case 'close':
        h.close(s.id, ev.code, ev.reason);
        this.maybeDone(s);
        return;
    }
  }

  /** Gives credit back once a quarter of the window has been handed on (the sender never runs dry while updates travel). */
  private consumed(s: MuxStream, n: number): void {
    if (this.streams.get(s.id) !== s || s.remoteEnd) return;
    s.consumed += n;
    if (s.consumed < s.window / 4) return;
    const inc = s.consumed;
    s.consumed = 0;
    s.allowance += inc;
    this.options.send(encodeWindowUpdate(s.id, inc));
  }

  private flush(s: MuxStream): void {
    while (s.queue.length > 0 && this.streams.get(s.id) === s) {
      const item = s.queue.peek()!;
      if (item.final) {
        s.queue.shift();
        s.localEndSent = true;
        this.options.send(item.final);
        this.maybeDone(s);
        this.endSent(s);
        return;
      }
      if (!this.transportReady()) return;
      const len = item.payload.length;
      if (len > s.credit) {
        if (s.credit < this.minSplit) return;
        // What the credit allows now; a message fragment split this way is not the last one.
        const part = item.payload.subarray(0, s.credit);
        item.payload = item.payload.subarray(s.credit);
        s.credit = 0;
        this.options.send(encodeFrame(item.type, item.flags & ~(FLAG_END | FLAG_FIN), s.id, part));
        return;
      }
      s.queue.shift();
      s.credit -= len;
      this.options.send(encodeFrame(item.type, item.flags, s.id, item.payload));
      if (item.type === T.DATA && item.flags & FLAG_END) {
        s.localEndSent = true;
        this.maybeDone(s);
        this.endSent(s);
      }
    }
  }

  private endSent(s: MuxStream): void {
    const sent = s.onSent;
    s.onSent = null;
    sent?.();
  }

  private writableNow(s: MuxStream): boolean {
    const ok = s.queue.length === 0 && s.credit > 0 && this.transportReady();
    if (!ok) s.blocked = true;
    return ok;
  }

  private maybeWritable(s: MuxStream): void {
    if (!s.blocked || this.streams.get(s.id) !== s) return;
    if (s.queue.length > 0 || s.credit <= 0 || !this.transportReady()) return;
    s.blocked = false;
    this.handler?.writable(s.id);
  }

  private maybeDone(s: MuxStream): void {
    if (!s.localEndSent || !s.remoteEnd || s.inbox.length > 0 || this.streams.get(s.id) !== s) return;
    this.streams.delete(s.id);
    this.handler?.done?.(s.id);
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Events one paused stream may hold at least (more with a window over 1 MiB:
 * a window's worth of 64-byte frames). The window bounds their bytes; this
 * bounds their count, as each costs an object or two.
 */
const MAX_HELD_EVENTS = 16_384;
/**
 * Streams a client keeps open at once; beyond, OPEN is answered RESET
 * (REFUSED). Far above what the proxy's own limits let visitors open, it
 * bounds the local connections a broken or hostile proxy can make.
 */
export const MAX_CLIENT_STREAMS = 10_000;
