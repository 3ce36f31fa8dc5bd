import { failureBeforeHead, type StreamFailure } from './stream-failure.js';
import type { HttpRequestHead, InboundStreamEvent, ResponseHead, TunnelWire } from './stream-types.js';

/**
 * Where an HTTP stream's response goes: the requester's HTTP response. The
 * HTTP front end implements it (header hygiene, status checks live there, so
 * every protocol version shares them).
 */
export interface HttpResponseSink {
  /** The response head as the client sent it. `false`: refused (the sink answered an error itself). */
  head(head: ResponseHead): boolean;
  /**
   * Response body bytes. `false`: stop until `whenDrained`'s callback.
   * `flushed` (once) when the bytes have left the process, or never will.
   */
  data(chunk: Uint8Array, flushed?: () => void): boolean;
  whenDrained(cb: () => void): void;
  end(): void;
  /** The requester has the whole response (its framing said so): nothing the tunnel sends from now on reaches it. */
  readonly complete: boolean;
  /** Fails the exchange: an error status before the head, an aborted response after it. */
  fail(status: number, reason: string): void;
}

/** The request body side of an HTTP stream, fed by the HTTP front end. */
export interface HttpRequestBody {
  /** `false`: stop reading the requester until `onWritable`'s callback runs. */
  write(chunk: Uint8Array): boolean;
  /** The whole request has been forwarded; the response timer starts. */
  end(): void;
  /**
   * The requester went away or was refused (the stream is dropped without a response), or the response came whole
   * before the upload ended (the stream is dropped, the rest of the upload never sent).
   */
  abort(): void;
  onWritable(cb: () => void): void;
}

/** How a finished exchange ended, for counters and events. */
export interface HttpExchangeEnd {
  readonly status: number;
}

/** The reason of the 504 for a request body the tunnel held back (no credit) for the whole response timeout. */
export const BODY_NOT_TAKEN_REASON = 'tunnel did not take the request body in time';

/**
 * One HTTP request through a tunnel, as a stream: the request head and body go
 * out; the response head, body and end come back. The response timeout runs
 * from the end of the request until the response head (time to first byte),
 * and, before the head, while the wire holds the request body back: a client
 * that never takes it (v2: grants no credit) must not hold the requester forever.
 * Once the requester has the whole response, the client's END gets as long
 * again: without it, the stream is released (reset) rather than kept forever.
 */
export class HttpExchange implements HttpRequestBody {
  private timer: NodeJS.Timeout | null = null;
  private headSeen = false;
  private done = false;
  private status = 0;
  private writableCb: (() => void) | null = null;
  /** The wire is holding the request body back and `timer` bounds how long it may (see `write`). */
  private bodyHeld = false;

  constructor(
    readonly id: string,
    private readonly wire: TunnelWire,
    private readonly sink: HttpResponseSink,
    private readonly responseTimeoutMs: number,
    private readonly onDone: (exchange: HttpExchange, end: HttpExchangeEnd) => void,
  ) {}

  start(head: HttpRequestHead): void {
    this.wire.open(this.id, { kind: 'http', head });
  }

  write(chunk: Uint8Array): boolean {
    if (this.done) return true;
    const ok = this.wire.data(this.id, chunk);
    // Held back: the body's requester is not reading on, so only the tunnel can end the wait. Once it answers,
    // waiting for it to take the rest is the response's own flow (a streamed upload beside a streamed answer).
    if (!ok && !this.headSeen && !this.timer) {
      this.bodyHeld = true;
      this.armTimer(BODY_NOT_TAKEN_REASON);
    }
    return ok;
  }

  end(): void {
    if (this.done) return;
    this.wire.end(this.id);
    if (!this.headSeen) {
      this.clearTimer();
      this.armTimer('tunnel response timeout');
    }
  }

  abort(): void {
    // After a whole response (an early answer to an upload) the exchange ended as answered.
    this.finish(this.headSeen && this.sink.complete ? this.status : 499);
  }

  onWritable(cb: () => void): void {
    this.writableCb = cb;
  }

  /** The wire may take more request body. */
  writable(): void {
    if (this.bodyHeld) this.clearTimer();
    this.writableCb?.();
  }

  onEvent(ev: InboundStreamEvent): void {
    if (this.done) {
      if (ev.type === 'data') ev.flushed?.();
      return;
    }
    switch (ev.type) {
      case 'head':
        if (this.headSeen) return;
        this.headSeen = true;
        this.clearTimer();
        this.status = ev.head.status;
        if (!this.sink.head(ev.head)) return this.finish(502);
        return this.awaitEndIfComplete();
      case 'data':
        if (!this.headSeen) return void ev.flushed?.();
        if (!this.sink.data(ev.chunk, ev.flushed)) {
          this.wire.pauseInbound(this.id);
          this.sink.whenDrained(() => this.wire.resumeInbound(this.id));
        }
        return this.awaitEndIfComplete();
      case 'end':
      case 'close':
        if (!this.headSeen) return this.failWith(502, 'tunnel sent no response');
        this.sink.end();
        this.finish(this.status);
        return;
      case 'malformed':
      case 'reset': {
        const { status, reason } = failureBeforeHead(ev);
        return this.failWith(status, reason);
      }
    }
  }

  /** The tunnel is gone: answer `failure` now (a response under way is cut short). */
  tunnelGone(failure: StreamFailure): void {
    this.failWith(failure.status, failure.reason);
  }

  private failWith(status: number, reason: string): void {
    if (this.done) return;
    this.sink.fail(status, reason);
    this.finish(status);
  }

  private finish(status: number): void {
    if (this.done) return;
    this.done = true;
    this.clearTimer();
    this.wire.release(this.id);
    this.onDone(this, { status });
  }

  /** Nobody waits for the rest: a client that never sends its END must not keep the stream for the tunnel's life. */
  private awaitEndIfComplete(): void {
    if (this.timer || !this.sink.complete) return;
    this.timer = setTimeout(() => this.finish(this.status), this.responseTimeoutMs);
    this.timer.unref();
  }

  private armTimer(reason: string): void {
    this.timer = setTimeout(() => this.failWith(504, reason), this.responseTimeoutMs);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.bodyHeld = false;
  }
}
