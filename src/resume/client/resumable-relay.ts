/**
 * `ResumableRelay`: a byte stream through a wsproxy `/relay` that survives
 * dropped WebSockets. For browsers and Node; it uses only the WHATWG WebSocket
 * API and imports nothing from Node, so the compiled file loads as an ES module
 * in a browser (`import { ResumableRelay } from 'wsproxy/resumable-relay'`).
 *
 * ```ts
 * const relay = new ResumableRelay({
 *   url: 'wss://proxy.example.com/relay?host=ssh.example.com&port=22',
 *   token: () => clerk.session.getToken(),   // called for a fresh JWT on every attach
 * });
 * relay.on('data', (bytes) => term.write(bytes));
 * relay.on('close', ({ code, reason }) => console.log('ended', code, reason));
 * relay.send(new TextEncoder().encode('hello'));
 * ```
 *
 * In Node, pass the `ws` package's class: `new ResumableRelay({ url, WebSocket })`
 * (or `createWebSocket` to set headers such as Origin).
 *
 * The protocol is in docs/resume-protocol.md.
 */
import {
  AckScheduler,
  encodeControl,
  MARK_CONTROL,
  MARK_DATA,
  parseControl,
  ProtocolError,
  ReplayBuffer,
  type ControlMessage,
  type ControlMode,
} from '../wire.js';
import { protocolCloseCode } from '../../common/ws-error-codes.js';

export type { ControlMode } from '../wire.js';

/** The part of the WHATWG WebSocket interface the relay uses (browsers' `WebSocket`, the `ws` package's class). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string | ArrayBuffer | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
  removeEventListener(type: string, listener: (event: any) => void): void;
  /** Stops / restarts reading the socket (Node's `ws`; browsers have neither). */
  pause?(): void;
  resume?(): void;
}

/**
 * A WebSocket constructor with the WHATWG signature. The third argument is
 * what the `ws` package reads as its options (`maxPayload`); a browser's
 * WebSocket ignores it.
 */
export type WebSocketConstructorLike = new (url: string, protocols?: string | string[], options?: { maxPayload?: number }) => WebSocketLike;

/** Where the token travels on each handshake. */
export type RelayTokenCarrier =
  /** `token=` in the query (default; works everywhere). */
  | 'query'
  /** A `bearer.<JWT>` WebSocket subprotocol (keeps it out of URLs and access logs). */
  | 'protocol'
  /** Handed to `createWebSocket`, which sets `Authorization: Bearer` itself (Node only). */
  | 'header';

export interface ResumableRelayOptions {
  /** The `/relay` URL with the target: `wss://proxy/relay?host=H&port=P`. Resume parameters are added. */
  readonly url: string;
  /** Called before every attach (the first one and each reattach) for a fresh token; none when absent or it returns null. */
  readonly token?: () => string | null | undefined | Promise<string | null | undefined>;
  readonly tokenCarrier?: RelayTokenCarrier;
  /** The WebSocket class; default `globalThis.WebSocket`. In Node pass the `ws` package's `WebSocket`. */
  readonly WebSocket?: WebSocketConstructorLike;
  /** Creates each socket (overrides `WebSocket`): for Node options such as headers. `token` is the attach's token. */
  readonly createWebSocket?: (url: string, protocols: string[], token: string | null) => WebSocketLike;
  /** Extra subprotocols to offer (the proxy answers the first one that is not a token). */
  readonly protocols?: readonly string[];
  /** `text` (default): control in text frames. `binary`: every frame binary with a marker byte. */
  readonly control?: ControlMode;
  /** `send` returns false while this many bytes are unacknowledged; `drain` follows when they are down to half. Default 1 MiB. */
  readonly highWaterMark?: number;
  /** First reattach delay; doubles per failed attempt up to `maxBackoffMs` (±20 % jitter). Default 100 ms. */
  readonly initialBackoffMs?: number;
  /** Default 5000 ms. */
  readonly maxBackoffMs?: number;
  /** Time one attach (handshake and session frame) may take before it is abandoned. Default 15000 ms. */
  readonly attachTimeoutMs?: number;
  /**
   * Largest message taken from the proxy; a larger one ends the relay with 1009
   * (never reattached). Default 4 MiB, the proxy's default `MAX_MESSAGE_BYTES`:
   * the proxy sends reads of the target of at most 256 KiB. With the `ws`
   * class as `WebSocket` it is passed as its `maxPayload`, so a larger message
   * is refused before it is buffered (not `ws`'s 100 MiB); give a
   * `createWebSocket` socket the same `maxPayload` yourself. A browser's
   * WebSocket has no such limit: there it is checked once the message arrived.
   */
  readonly maxMessageBytes?: number;
}

/** The session the proxy opened. */
export interface RelaySessionInfo {
  /** The session id; null when the proxy has resumption disabled (then this is a plain relay). */
  readonly id: string | null;
  /** Seconds the proxy keeps a detached session; 0 when resumption is disabled. */
  readonly windowS: number;
}

export interface RelayCloseInfo {
  readonly code: number;
  readonly reason: string;
}

/** Events and their argument. */
export interface ResumableRelayEvents {
  /** The session is open (first attach). */
  open: RelaySessionInfo;
  /** Bytes from the target, in order, each byte once. */
  data: Uint8Array;
  /** `send` returned false earlier and the unacknowledged bytes fell to half the high-water mark. */
  drain: void;
  /** The WebSocket dropped; reattaching. */
  detach: RelayCloseInfo;
  /** Reattached; nothing was lost. */
  reattach: { readonly attempts: number };
  /** The relay ended for good (1000: normally; 4404: the session is gone; ...). */
  close: RelayCloseInfo;
}

type Listener<K extends keyof ResumableRelayEvents> = (arg: ResumableRelayEvents[K]) => void;

/** Where the relay is. */
export type RelayState = 'connecting' | 'open' | 'detached' | 'closed';

/** Close codes after which a reattach is worth trying: the connection broke, or the proxy asked to retry later. */
const RETRYABLE = new Set([1001, 1005, 1006, 1012, 1013, 1014, 4500, 4502, 4503, 4504]);

/** Largest message sent; bigger `send`s are split. */
const MAX_MESSAGE = 1024 * 1024;
/**
 * Unacknowledged bytes past which the proxy is ignoring flow control: its
 * window is `RESUME_BUFFER_BYTES` (at most 64 MiB) plus one read. Without a
 * bound, a proxy that keeps sending while a paused reader holds its acks
 * would pile everything up in the reader.
 */
const PROXY_UNACKED_MAX = 64 * 1024 * 1024 + MAX_MESSAGE;
/**
 * The smallest `maxMessageBytes` a proxy can announce (`MAX_MESSAGE_BYTES` is
 * 1024 at least). Below it the proxy is broken or hostile: merging sends up to
 * such a limit would cut each send into messages of a byte or two (a 1 MiB
 * send: a million WebSocket messages, seconds of blocked event loop and
 * ~130 MB of socket buffers), again on every replay.
 */
const MIN_PROXY_MESSAGE = 1024;
/** Default `maxMessageBytes`: the proxy's default `MAX_MESSAGE_BYTES` (as `RELAY_CLIENT_MAX_MESSAGE_BYTES`, which this file cannot import). */
const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/**
 * The longest window a proxy can keep a detached session (`RESUME_WINDOW_S` is
 * 0..3600). A larger `windowS` is taken as this: reattach attempts stop within
 * an hour of a drop whatever a broken or hostile proxy announced, never
 * "for 2^53 seconds".
 */
const MAX_WINDOW_S = 3600;
const OPEN = 1;
const CONNECTING = 0;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function toBytes(data: Uint8Array | ArrayBuffer | ArrayBufferView | string): Uint8Array {
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * A resumable byte stream over a wsproxy relay. Every byte sent is kept until
 * the proxy acknowledges it, every byte received is counted and acknowledged;
 * when the WebSocket drops, the relay reattaches (with backoff, within the
 * proxy's window) and both sides replay what the other missed.
 */
export class ResumableRelay {
  private readonly options: Required<
    Pick<ResumableRelayOptions, 'control' | 'highWaterMark' | 'initialBackoffMs' | 'maxBackoffMs' | 'attachTimeoutMs' | 'maxMessageBytes'>
  > &
    ResumableRelayOptions;
  private readonly listeners: { [K in keyof ResumableRelayEvents]?: Set<Listener<K>> } = {};
  /**
   * One chunk per message as `send` made it (at most MAX_MESSAGE), never merged: on a plain fallback, or to a
   * proxy that announces no limit, each chunk is sent as one message, and sends merged in memory (slices of one
   * buffer) could make a message over the proxy's MAX_MESSAGE_BYTES although each was within it. To a proxy
   * that announces its limit, `sendData` merges them on the wire up to it.
   */
  private readonly out = new ReplayBuffer(0);
  private readonly acks: AckScheduler;
  private stateValue: RelayState = 'connecting';
  private ws: WebSocketLike | null = null;
  private unwire: (() => void) | null = null;
  /** The current socket has delivered its session frame. */
  private attached = false;
  private session: RelaySessionInfo | null = null;
  private closeRequested = false;
  private needDrain = false;
  private detachedAt: number | null = null;
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private attachTimer: ReturnType<typeof setTimeout> | null = null;
  private drainPoll: ReturnType<typeof setTimeout> | null = null;
  /** Data sent in the current task, not yet on the socket (see `sendData`). */
  private wire: Uint8Array[] = [];
  /** Largest message to merge sends into (the proxy's announced limit); 0: one message per send. */
  private mergeLimit = 0;
  /** Bytes a data message carries before its payload: the marker with control=binary. */
  private readonly dataMarker: 0 | 1;
  private wireBytes = 0;
  private wireScheduled = false;
  private resolveOpened!: (info: RelaySessionInfo) => void;
  private rejectOpened!: (err: Error) => void;

  /** Resolves when the session is open; rejects when the first attach fails. */
  readonly opened: Promise<RelaySessionInfo>;

  constructor(options: ResumableRelayOptions) {
    this.options = {
      control: 'text',
      highWaterMark: 1024 * 1024,
      initialBackoffMs: 100,
      maxBackoffMs: 5000,
      attachTimeoutMs: 15_000,
      ...options,
      maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    };
    this.dataMarker = this.options.control === 'binary' ? 1 : 0;
    this.acks = new AckScheduler((received) => this.sendControl({ type: 'ack', received }));
    this.opened = new Promise<RelaySessionInfo>((resolve, reject) => {
      this.resolveOpened = resolve;
      this.rejectOpened = reject;
    });
    this.opened.catch(() => undefined);
    void this.attach();
  }

  get state(): RelayState {
    return this.stateValue;
  }

  /** The session, once open. */
  get sessionInfo(): RelaySessionInfo | null {
    return this.session;
  }

  /** Bytes sent that the proxy has not acknowledged yet (on a plain relay: the socket's `bufferedAmount`). */
  get bufferedAmount(): number {
    if (this.session && this.session.id === null) return this.ws?.bufferedAmount ?? 0;
    return this.out.size;
  }

  /** Total bytes received from the target. */
  get bytesReceived(): number {
    return this.acks.total;
  }

  /** Total bytes passed to `send`. */
  get bytesSent(): number {
    return this.out.end;
  }

  on<K extends keyof ResumableRelayEvents>(event: K, listener: Listener<K>): this {
    let set = this.listeners[event] as Set<Listener<K>> | undefined;
    if (!set) {
      set = new Set();
      (this.listeners as Record<string, Set<unknown>>)[event] = set;
    }
    set.add(listener);
    return this;
  }

  off<K extends keyof ResumableRelayEvents>(event: K, listener: Listener<K>): this {
    (this.listeners[event] as Set<Listener<K>> | undefined)?.delete(listener);
    return this;
  }

  /**
   * Queues bytes for the target (sent at once while attached, kept until
   * acknowledged). The bytes are kept by reference: do not modify them
   * afterwards. Returns false when `bufferedAmount` reached the high-water
   * mark: wait for `drain` before sending more.
   */
  send(data: Uint8Array | ArrayBuffer | ArrayBufferView | string): boolean {
    if (this.stateValue === 'closed' || this.closeRequested) throw new Error('ResumableRelay: send after close');
    const all = toBytes(data);
    // Large sends go out as several messages (views, no copies), well below the proxy's MAX_MESSAGE_BYTES.
    for (let off = 0; off < all.length; off += MAX_MESSAGE) {
      const bytes = all.length <= MAX_MESSAGE ? all : all.subarray(off, off + MAX_MESSAGE);
      if (this.session !== null && this.session.id === null) {
        // A plain relay (resumption off at the proxy): nothing to keep.
        this.ws?.send(bytes);
      } else {
        this.out.push(bytes);
        if (this.attached) this.sendData(bytes);
      }
    }
    return this.belowHighWater();
  }

  /**
   * Stops acknowledging received bytes (the reader is slow): the proxy stops
   * reading the target once its buffer is full. On a plain relay (resumption
   * off at the proxy) nothing is acknowledged: the socket itself stops being
   * read, where it can be (Node's `ws`).
   */
  pause(): void {
    this.acks.hold();
    if (this.session?.id === null) this.ws?.pause?.();
  }

  resume(): void {
    this.acks.release();
    if (this.session?.id === null) this.ws?.resume?.();
  }

  /**
   * Ends the relay for good: everything sent so far reaches the target (after
   * a reattach, if need be), then the proxy closes the target. `close` follows.
   */
  close(): void {
    if (this.stateValue === 'closed' || this.closeRequested) return;
    this.closeRequested = true;
    if (this.attached && this.ws) {
      this.flushWire();
      this.ws.close(1000, 'client closed');
    }
  }

  // ---- attaching -----------------------------------------------------------

  private async attach(): Promise<void> {
    const o = this.options;
    let token: string | null = null;
    try {
      token = (await o.token?.()) ?? null;
    } catch (err) {
      this.attachFailed(1006, `token provider failed: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (this.stateValue === 'closed') return;

    const url = new URL(o.url);
    const q = url.searchParams;
    const reattach = this.session?.id ?? null;
    if (reattach !== null) {
      q.delete('host');
      q.delete('port');
      q.set('resume', reattach);
      q.set('received', String(this.acks.total));
    } else {
      q.set('resume', '1');
      q.delete('received');
    }
    q.set('errors', 'close');
    if (o.control === 'binary') q.set('control', 'binary');
    else q.delete('control');
    q.delete('token');
    const protocols = [...(o.protocols ?? [])];
    const carrier = o.tokenCarrier ?? 'query';
    if (token !== null && carrier === 'query') q.set('token', token);
    if (token !== null && carrier === 'protocol') protocols.push(`bearer.${token}`);

    let ws: WebSocketLike;
    try {
      if (o.createWebSocket) {
        ws = o.createWebSocket(url.toString(), protocols, token);
      } else {
        const Ctor = o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructorLike }).WebSocket;
        if (!Ctor) throw new Error('no WebSocket class: pass options.WebSocket (in Node, the ws package)');
        const limit = { maxPayload: o.maxMessageBytes };
        ws = protocols.length ? new Ctor(url.toString(), protocols, limit) : new Ctor(url.toString(), undefined, limit);
      }
    } catch (err) {
      if (this.session === null) this.finish(1006, err instanceof Error ? err.message : String(err));
      else this.attachFailed(1006, err instanceof Error ? err.message : String(err));
      return;
    }
    // The `ws` package hands Buffers over without a copy with 'nodebuffer'; a
    // browser ignores that value and keeps its default, so ask for 'arraybuffer' then.
    ws.binaryType = 'nodebuffer';
    if (ws.binaryType !== 'nodebuffer') ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.attached = false;
    const onMessage = (ev: { data: unknown }): void => {
      if (ws === this.ws) this.onMessage(ev.data);
    };
    const onClose = (ev: { code: number; reason: string }): void => {
      if (ws === this.ws) this.onSocketClosed(ev.code, ev.reason);
    };
    ws.addEventListener('message', onMessage);
    ws.addEventListener('close', onClose);
    // Stays registered for the socket's life: an abandoned socket may still
    // report an error, and an unheard 'error' would throw in Node.
    ws.addEventListener('error', (ev: { error?: unknown; message?: string }) => {
      // `ws` closed the socket itself for a frame of the proxy (a message over maxPayload: 1009, …):
      // the proxy broke the protocol, which ends the relay; its close often never comes (1006), which
      // would otherwise read as a dropped connection to reattach, and be refused the same way again.
      const code = protocolCloseCode(ev?.error);
      if (code !== null && ws === this.ws) this.fail(code, (ev.error as Error).message);
    });
    this.unwire = () => {
      ws.removeEventListener('message', onMessage);
      ws.removeEventListener('close', onClose);
    };
    this.attachTimer = setTimeout(() => {
      this.attachTimer = null;
      this.abandonSocket();
      this.attachFailed(1006, 'attach timed out');
    }, o.attachTimeoutMs);
  }

  /** Drops the current socket without waiting for its close event. */
  private abandonSocket(): void {
    const ws = this.ws;
    this.forgetSocket();
    if (ws && (ws.readyState === OPEN || ws.readyState === CONNECTING)) {
      try {
        ws.close(4000, 'abandoned');
      } catch {
        // already closing
      }
    }
  }

  private onSessionFrame(info: { id: string | null; windowS: number; received?: number; maxMessageBytes?: number }): void {
    if (this.attachTimer) {
      clearTimeout(this.attachTimer);
      this.attachTimer = null;
    }
    const first = this.session === null;
    if (!first && info.id !== this.session!.id) return this.fail(1002, 'session frame for another session');
    if (info.maxMessageBytes !== undefined && info.maxMessageBytes < MIN_PROXY_MESSAGE)
      return this.fail(1002, `session frame with maxMessageBytes ${info.maxMessageBytes} (under ${MIN_PROXY_MESSAGE})`);
    if (first) this.session = { id: info.id, windowS: Math.min(info.windowS, MAX_WINDOW_S) };
    this.attached = true;
    this.stateValue = 'open';
    this.mergeLimit = info.maxMessageBytes === undefined ? 0 : Math.min(MAX_MESSAGE, info.maxMessageBytes);

    if (info.id === null) {
      // Resumption is off at the proxy: a plain relay from here on.
      for (const chunk of this.out.chunksFrom(this.out.start)) this.ws!.send(chunk);
      this.out.ackTo(this.out.end);
      if (this.acks.holding) this.ws!.pause?.();
      // The replay may have left the socket's buffer high: a plain relay only learns it drained by looking.
      if (this.needDrain) this.pollDrain();
    } else {
      const from = info.received ?? 0;
      if (!(from >= this.out.start && from <= this.out.end)) return this.fail(1002, 'proxy asked for bytes no longer held');
      this.out.ackTo(from);
      this.acks.resetAcked(this.acks.total);
      this.dropWire();
      for (const chunk of this.out.chunksFrom(from)) this.sendData(chunk);
    }
    const attempts = this.attempts;
    this.attempts = 0;
    this.detachedAt = null;
    if (first) {
      this.emit('open', this.session!);
      this.resolveOpened(this.session!);
    } else {
      this.emit('reattach', { attempts });
    }
    this.maybeDrain();
    if (this.closeRequested && this.ws) {
      this.flushWire();
      this.ws.close(1000, 'client closed');
    }
  }

  // ---- frames --------------------------------------------------------------

  private onMessage(raw: unknown): void {
    // A WebSocket without maxPayload (a browser's) took it whole; at least it goes no further.
    const size = typeof raw === 'string' ? raw.length : raw instanceof ArrayBuffer || raw instanceof Uint8Array ? raw.byteLength : 0;
    if (size > this.options.maxMessageBytes) return this.fail(1009, `message of ${size} bytes from the proxy (over ${this.options.maxMessageBytes})`);
    const plain = this.session !== null && this.session.id === null;
    if (typeof raw === 'string') {
      // Text frames are control frames with control=text, and nothing else.
      if (this.options.control === 'text' && !plain) return this.onControl(raw);
      return this.fail(1003, 'unexpected text frame');
    }
    let bytes: Uint8Array;
    if (raw instanceof ArrayBuffer) bytes = new Uint8Array(raw);
    else if (raw instanceof Uint8Array) bytes = raw;
    else return this.fail(1003, 'unexpected frame type (binaryType must be arraybuffer)');
    if (this.options.control === 'binary' && !plain) {
      if (bytes[0] === MARK_CONTROL) {
        let text: string;
        try {
          text = decoder.decode(bytes.subarray(1));
        } catch {
          return this.fail(1007, 'control frame is not UTF-8');
        }
        return this.onControl(text);
      }
      if (bytes[0] !== MARK_DATA) return this.fail(1002, 'unknown frame marker');
      bytes = bytes.subarray(1);
    }
    if (!this.attached) return this.fail(1002, 'data before the session frame');
    if (bytes.length === 0) return;
    if (!plain) {
      this.acks.add(bytes.length);
      if (this.acks.unacked > PROXY_UNACKED_MAX) return this.fail(1008, 'proxy sent past its window');
    }
    this.emit('data', bytes);
  }

  private onControl(text: string): void {
    let m: ControlMessage | null;
    try {
      m = parseControl(text);
    } catch (err) {
      return this.fail(1002, err instanceof ProtocolError ? err.message : 'invalid control frame');
    }
    if (m === null) return;
    if (m.type === 'session') {
      if (this.attached) return this.fail(1002, 'second session frame');
      return this.onSessionFrame(m);
    }
    if (!this.attached) return this.fail(1002, 'ack before the session frame');
    if (m.received > this.out.end) return this.fail(1002, 'ack beyond the bytes sent');
    if (m.received > this.out.start) {
      this.out.ackTo(m.received);
      this.maybeDrain();
    }
  }

  /**
   * Queues bytes for the attached socket. What is queued in one task goes
   * out as one message, up to the limit the proxy announced in its session
   * frame: the proxy acks per message of 64 KiB or more, and every ack wakes
   * both ends, so a burst of small sends costs one ack instead of one each.
   * A proxy that announced no limit gets one message per send, as sent.
   */
  private sendData(bytes: Uint8Array): void {
    const limit = this.mergeLimit - this.dataMarker;
    if (limit <= 0) return this.sendMessage([bytes], bytes.length);
    for (let off = 0; off < bytes.length; off += limit) {
      const part = bytes.length <= limit ? bytes : bytes.subarray(off, off + limit);
      if (this.wireBytes + part.length > limit) this.flushWire();
      this.wire.push(part);
      this.wireBytes += part.length;
    }
    if (!this.wireScheduled) {
      this.wireScheduled = true;
      queueMicrotask(this.flushWire);
    }
  }

  private readonly flushWire = (): void => {
    this.wireScheduled = false;
    const parts = this.wire;
    if (parts.length === 0) return;
    const total = this.wireBytes;
    this.dropWire();
    this.sendMessage(parts, total);
  };

  /** Sends `parts` (`total` bytes) as one data message on the attached socket. */
  private sendMessage(parts: Uint8Array[], total: number): void {
    const ws = this.ws;
    // Not sent now, still kept in `out`: a reattach replays it.
    if (!ws || !this.attached || ws.readyState !== OPEN) return;
    const marker = this.dataMarker;
    if (parts.length === 1 && marker === 0) return ws.send(parts[0]!);
    const message = new Uint8Array(total + marker);
    if (marker) message[0] = MARK_DATA;
    let off = marker;
    for (const part of parts) {
      message.set(part, off);
      off += part.length;
    }
    ws.send(message);
  }

  /** Forgets queued data (the socket is gone; `out` still holds it for a replay). */
  private dropWire(): void {
    this.wire = [];
    this.wireBytes = 0;
  }

  private sendControl(message: ControlMessage): void {
    const ws = this.ws;
    if (!ws || !this.attached || ws.readyState !== OPEN) return;
    ws.send(encodeControl(message, this.options.control));
  }

  // ---- flow control --------------------------------------------------------

  private belowHighWater(): boolean {
    const ok = this.bufferedAmount < this.options.highWaterMark;
    if (!ok) {
      this.needDrain = true;
      // A plain relay learns about its socket's buffer only by looking.
      if (this.session?.id === null) this.pollDrain();
    }
    return ok;
  }

  private maybeDrain(): void {
    // Half the mark, not just below it: a sender woken per ack would send one small message per ack.
    if (this.needDrain && this.bufferedAmount <= this.options.highWaterMark / 2) {
      this.needDrain = false;
      this.emit('drain', undefined);
    }
  }

  private pollDrain(): void {
    if (this.drainPoll) return;
    this.drainPoll = setTimeout(() => {
      this.drainPoll = null;
      this.maybeDrain();
      if (this.needDrain && this.stateValue !== 'closed') this.pollDrain();
    }, 20);
  }

  // ---- closing and reattaching ---------------------------------------------

  /** Detaches from the current socket: its listeners, the ack timer and the wire state go. */
  private forgetSocket(): void {
    this.unwire?.();
    this.unwire = null;
    this.ws = null;
    this.attached = false;
    this.acks.stop();
    this.dropWire();
  }

  private onSocketClosed(code: number, reason: string): void {
    this.forgetSocket();
    if (this.attachTimer) {
      clearTimeout(this.attachTimer);
      this.attachTimer = null;
    }
    if (this.session === null) {
      // The first attach failed: a refusal (4xxx with errors=close) or no connection.
      return this.finish(code, reason || (code === 1006 ? 'connection failed' : ''));
    }
    if (this.session.id === null || !RETRYABLE.has(code)) return this.finish(code, reason);
    this.attachFailed(code, reason);
  }

  /** An attach attempt failed in a retryable way: try again after a backoff, within the window. */
  private attachFailed(code: number, reason: string): void {
    if (this.stateValue === 'closed') return;
    if (this.session === null || this.session.id === null) return this.finish(code, reason);
    if (this.detachedAt === null) {
      this.detachedAt = Date.now();
      this.stateValue = 'detached';
      this.emit('detach', { code, reason });
    }
    const o = this.options;
    const base = Math.min(o.maxBackoffMs, o.initialBackoffMs * 2 ** Math.min(this.attempts, 20));
    const delay = base * (0.8 + Math.random() * 0.4);
    const deadline = this.detachedAt + this.session.windowS * 1000;
    if (Date.now() + delay > deadline) return this.finish(code === 1000 ? 1006 : code, `could not reattach within ${this.session.windowS} s (${reason || code})`);
    this.attempts++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.attach();
    }, delay);
  }

  /**
   * A protocol violation: end for good. (Browsers may only send close codes
   * 1000 and 3000-4999, so the socket is dropped with 4000; the proxy's
   * window then ends the session.)
   */
  private fail(code: number, reason: string): void {
    this.abandonSocket();
    this.finish(code, reason);
  }

  private finish(code: number, reason: string): void {
    if (this.stateValue === 'closed') return;
    this.stateValue = 'closed';
    this.acks.stop();
    for (const t of [this.retryTimer, this.attachTimer, this.drainPoll]) if (t) clearTimeout(t);
    this.retryTimer = this.attachTimer = this.drainPoll = null;
    if (this.ws) this.abandonSocket();
    if (this.session === null) this.rejectOpened(new Error(`relay closed before the session opened: ${code}${reason ? ` ${reason}` : ''}`));
    this.emit('close', { code, reason });
  }

  private emit<K extends keyof ResumableRelayEvents>(event: K, arg: ResumableRelayEvents[K]): void {
    const set = this.listeners[event] as Set<Listener<K>> | undefined;
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(arg);
      } catch (err) {
        // A listener's bug must not break the stream's state; report it out of band.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
