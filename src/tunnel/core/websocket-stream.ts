import type { HttpExchangeEnd } from './http-exchange.js';
import { failureBeforeHead, type StreamFailure } from './stream-failure.js';
import type { HttpRequestHead, InboundStreamEvent, ResponseHead, WebSocketWire } from './stream-types.js';

/** A refused upgrade's body is collected up to this size (it is an error page); beyond is dropped. */
export const REFUSAL_BODY_MAX = 64 * 1024;
/** After the requester closed, how long the client has to close its side before the stream is reset. */
const CLOSE_LINGER_MS = 30_000;

/**
 * The requester's side of a WebSocket stream: its upgrade request, and once
 * the client accepted, its WebSocket. The HTTP front end implements it.
 */
export interface WebSocketSink {
  /**
   * The client accepted (101, headers not yet cleaned): complete the
   * requester's handshake and call `opened()` on the stream once its WebSocket
   * is open. `false`: the requester is gone.
   */
  accept(head: ResponseHead): boolean;
  /** The client refused: answer the upgrade request with this status, headers and body. */
  refuse(head: ResponseHead, body: Uint8Array): void;
  /** Before the handshake: answer an error status. */
  fail(status: number, reason: string): void;
  /** A message fragment for the requester (`fin` on the last one). `false`: wait for `whenDrained`. */
  send(chunk: Uint8Array, binary: boolean, fin: boolean): boolean;
  whenDrained(cb: () => void): void;
  /** Closes the requester's WebSocket with `code` (1005: without a code; 1006 or an unsendable code: drops it). */
  close(code: number, reason: string): void;
}

type State = 'waiting' | 'refusing' | 'accepting' | 'open' | 'done';

/**
 * A WebSocket upgrade through a tunnel, as a stream. The upgrade request goes
 * out as the stream's head; the client answers with 101 (the requester's
 * handshake is then completed and messages flow both ways with their opcode)
 * or with a refusal status and body. Close codes pass through in both
 * directions; the stream is over once both sides have closed.
 */
export class WebSocketStream {
  private state: State = 'waiting';
  private timer: NodeJS.Timeout | null = null;
  private refusal: ResponseHead | null = null;
  private readonly refusalBody: Uint8Array[] = [];
  private refusalSize = 0;
  private localClosed = false;
  private remoteClosed = false;
  private status = 0;
  private writableCb: (() => void) | null = null;

  constructor(
    readonly id: string,
    private readonly wire: WebSocketWire,
    private readonly sink: WebSocketSink,
    private readonly responseTimeoutMs: number,
    private readonly onDone: (stream: WebSocketStream, end: HttpExchangeEnd) => void,
  ) {}

  start(head: HttpRequestHead): void {
    this.wire.open(this.id, { kind: 'websocket', head });
    this.timer = setTimeout(() => this.failWith(504, 'tunnel response timeout'), this.responseTimeoutMs);
    this.timer.unref();
  }

  /** The requester's WebSocket is open: the client's messages may flow. */
  opened(): void {
    if (this.state !== 'accepting') return;
    this.state = 'open';
    this.wire.resumeInbound(this.id);
  }

  /** A message from the requester. `false`: stop reading it until `onWritable`'s callback. */
  message(data: Uint8Array, binary: boolean): boolean {
    if (this.state !== 'open' || this.localClosed) return true;
    return this.wire.message(this.id, data, binary);
  }

  onWritable(cb: () => void): void {
    this.writableCb = cb;
  }

  /** The wire may take more of the requester's messages. */
  writable(): void {
    this.writableCb?.();
  }

  /** The requester's WebSocket closed (or its connection dropped: 1006). */
  requesterClosed(code: number, reason: string): void {
    if (this.state === 'done' || this.localClosed) return;
    if (this.state !== 'open' && this.state !== 'accepting') return this.finish(499);
    this.localClosed = true;
    this.wire.closeWebSocket(this.id, code, reason);
    if (this.remoteClosed) return this.finishOnceSent();
    this.clearTimer();
    this.timer = setTimeout(() => this.finish(101), CLOSE_LINGER_MS);
    this.timer.unref();
  }

  /** The requester went away before the handshake completed. */
  abort(): void {
    this.finish(499);
  }

  onEvent(ev: InboundStreamEvent): void {
    switch (ev.type) {
      case 'head':
        if (this.state !== 'waiting') return;
        this.clearTimer();
        this.status = ev.head.status;
        if (ev.head.status === 101) {
          this.state = 'accepting';
          // Messages wait in the codec until the requester's WebSocket is open.
          this.wire.pauseInbound(this.id);
          if (!this.sink.accept(ev.head)) this.finish(499);
        } else {
          this.state = 'refusing';
          this.refusal = ev.head;
          // Answered at the refusal's END: a client that never sends it must not
          // hold the requester (and its per-IP slot), whose socket is not read.
          this.timer = setTimeout(() => this.failWith(504, 'tunnel response timeout'), this.responseTimeoutMs);
          this.timer.unref();
        }
        return;
      case 'data':
        if (this.state !== 'refusing' || this.refusalSize >= REFUSAL_BODY_MAX) return;
        this.refusalBody.push(ev.chunk.subarray(0, REFUSAL_BODY_MAX - this.refusalSize));
        this.refusalSize += Math.min(ev.chunk.length, REFUSAL_BODY_MAX - this.refusalSize);
        return;
      case 'end':
      case 'close':
        if (this.state === 'waiting') return this.failWith(502, 'tunnel sent no response');
        if (this.state !== 'refusing') return;
        this.sink.refuse(this.refusal!, concat(this.refusalBody, this.refusalSize));
        return this.finish(this.refusal!.status);
      case 'message':
        if (this.state !== 'open') return;
        if (!this.sink.send(ev.chunk, ev.binary, ev.fin)) {
          this.wire.pauseInbound(this.id);
          this.sink.whenDrained(() => this.wire.resumeInbound(this.id));
        }
        return;
      case 'wsclose':
        if (this.state !== 'open' && this.state !== 'accepting') return;
        this.remoteClosed = true;
        this.sink.close(ev.code, ev.reason);
        if (this.localClosed) this.finishOnceSent();
        return;
      case 'malformed':
      case 'reset':
        if (this.state === 'waiting' || this.state === 'refusing') {
          const { status, reason } = failureBeforeHead(ev);
          return this.failWith(status, reason);
        }
        if (this.state === 'done') return;
        this.sink.close(1011, 'tunnel reset the stream');
        return this.finish(101);
    }
  }

  /** The tunnel is gone: `failure` before the handshake, 1001 with its reason after it. */
  tunnelGone(failure: StreamFailure): void {
    if (this.state === 'waiting' || this.state === 'refusing') return this.failWith(failure.status, failure.reason);
    if (this.state === 'done') return;
    this.sink.close(1001, failure.reason);
    this.finish(101);
  }

  private failWith(status: number, reason: string): void {
    if (this.state === 'done') return;
    this.sink.fail(status, reason);
    this.finish(status);
  }

  /**
   * Closed both ways: the stream goes once the requester's last messages and its close, which may still
   * wait for the client's credit, are out (at most CLOSE_LINGER_MS); releasing it before would reset the
   * stream and drop them.
   */
  private finishOnceSent(): void {
    if (!this.wire.whenSent?.(this.id, () => this.finish(101))) return this.finish(101);
    this.clearTimer();
    this.timer = setTimeout(() => this.finish(101), CLOSE_LINGER_MS);
    this.timer.unref();
  }

  private finish(status: number): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.clearTimer();
    this.wire.release(this.id);
    this.onDone(this, { status: this.status === 101 ? 101 : status });
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
