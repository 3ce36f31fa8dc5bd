import { WebSocket } from 'ws';
import { onWebSocketEnd } from '../../common/protocol-close.js';
import { ChurnMap } from '../../common/churn-map.js';
import {
  base64ToBytes,
  decodeFrame,
  encodeData,
  encodeHttpRequest,
  encodeTcpClose,
  encodeTcpOpen,
  encodeTunnelReady,
  utf8ToBytes,
} from '../protocol/v1.js';
import type {
  HttpRequestHead,
  InboundStreamEvent,
  StreamKind,
  StreamOpen,
  TunnelReadyInfo,
  TunnelWire,
  TunnelWireHandler,
} from '../core/stream-types.js';
import { FrameSender } from '../core/frame-sender.js';
import { refusedForBacklog } from '../core/client-backlog.js';
import type { ByteBudget } from './byte-budget.js';
import { StallBudget } from './stall-budget.js';
import { HeldBody } from '../../common/held-body.js';

/**
 * Bytes the proxy lets pile up in a tunnel WebSocket's send buffer before it
 * asks every stream feeding it to wait (pauses their TCP sockets).
 */
export const TUNNEL_WS_HIGH_WATER = 256 * 1024;

export interface V1WireOptions {
  /** Send control messages as binary frames (`control=binary`). */
  readonly controlBinary: boolean;
  /**
   * How long TCP connections whose local readers do not read may hold the
   * whole WebSocket paused (v1 has one reader for all streams): a stuck
   * connection gets all of it, stuck connections in a row share it
   * (`StallBudget`); beyond, they are reset so the others go on. Pauses that
   * end because the reader caught up cost nothing.
   */
  readonly inboundStallMs: number;
  /**
   * Send-buffer bytes past which a new `http_request` is answered 503 instead
   * of queued: a client that stops reading would otherwise collect every
   * visitor's whole request in the proxy's memory.
   */
  readonly requestBacklogBytes: number;
  /**
   * Request body bytes held until each body has arrived, shared by every v1
   * tunnel of the process, with a share per requester IP: a request that would
   * pass either is answered 503, so visitors trickling large bodies cannot fill
   * the proxy's memory, and one address cannot take it all.
   */
  readonly bodyBudget: ByteBudget;
}

interface HttpState {
  readonly kind: 'http';
  readonly head: HttpRequestHead;
  /** The body so far, in about its bytes however the requester cut it; its bytes are taken from the body budget. */
  readonly body: HeldBody;
  /** The `http_request` went out (or the request was refused); an `http_response` is awaited. */
  sent: boolean;
}

interface TcpState {
  readonly kind: 'tcp';
  /** A `tcp_close` went out or came in: the connection is over on the wire. */
  closed: boolean;
}

/**
 * The v1 codec: JSON control messages and length-prefixed TCP payload frames on
 * one WebSocket (docs/tunnel-protocol.md). Whole HTTP bodies are buffered, as
 * v1 carries them inside one JSON message; v1 has no cancel and no half-close,
 * which this class hides from the session.
 */
export class V1Wire implements TunnelWire {
  readonly version = 1;
  readonly carriesWebSockets = false;
  private handler: TunnelWireHandler | null = null;
  private readonly streams = new ChurnMap<string, HttpState | TcpState>();
  private readonly pausedInbound = new ChurnMap<string, NodeJS.Timeout>();
  /**
   * After `close()`, streams whose local reader was not keeping up: what the client sends them is dropped (their
   * readers get a prefix, never one with a hole), so the WebSocket is read on to the client's close answer.
   */
  private readonly droppingInbound = new Set<string>();
  /**
   * Streams of `droppingInbound` that did lose bytes: their `tcp_close` is a reset, not a close, so that the
   * reader gets a TCP reset rather than a FIN that would pass the prefix for the whole stream.
   */
  private readonly truncatedInbound = new Set<string>();
  /** `close()` was called: the WebSocket is never paused again. */
  private closing = false;
  private readonly sender: FrameSender;
  private readonly stalls: StallBudget;
  /** Stream ids: a counter (ids only need to be unique within this tunnel), written as 12 hex digits. */
  private lastId = 0;

  constructor(
    private readonly ws: WebSocket,
    private readonly options: V1WireOptions,
  ) {
    this.sender = new FrameSender(ws, TUNNEL_WS_HIGH_WATER, () => this.handler?.onWritable(null));
    this.stalls = new StallBudget(options.inboundStallMs);
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  attach(handler: TunnelWireHandler): void {
    this.handler = handler;
    this.ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    onWebSocketEnd(this.ws, (code, reason, forClientFrames) => {
      for (const timer of this.pausedInbound.values()) clearTimeout(timer);
      this.pausedInbound.clear();
      this.droppingInbound.clear();
      this.truncatedInbound.clear();
      for (const s of this.streams.values()) if (s.kind === 'http') this.giveBack(s).clear();
      this.streams.clear();
      handler.onClose(code, reason, forClientFrames);
    });
  }

  ready(info: TunnelReadyInfo): void {
    this.sendControl(encodeTunnelReady(info.tunnelUrl, info.rawPort));
  }

  allocateStreamId(_kind: StreamKind): string {
    let id: string;
    do {
      this.lastId = this.lastId >= 0xffffffffffff ? 1 : this.lastId + 1;
      id = this.lastId.toString(16).padStart(12, '0');
    } while (this.streams.has(id));
    return id;
  }

  open(streamId: string, open: StreamOpen): void {
    if (open.kind === 'http') {
      this.streams.set(streamId, { kind: 'http', head: open.head, body: new HeldBody(), sent: false });
    } else {
      this.streams.set(streamId, { kind: 'tcp', closed: false });
      this.sendControl(encodeTcpOpen(streamId));
    }
  }

  data(streamId: string, chunk: Uint8Array): boolean {
    const s = this.streams.get(streamId);
    if (!s) return true;
    if (s.kind === 'http') {
      if (s.sent) return true;
      if (!this.options.bodyBudget.take(chunk.length, s.head.requester ?? '')) {
        this.giveBack(s).clear();
        s.sent = true;
        queueMicrotask(() => this.handler?.onStreamEvent(streamId, { type: 'reset', reason: 'too many request bodies in transit', status: 503 }));
        return true;
      }
      s.body.push(chunk);
      return true;
    }
    if (s.closed || chunk.length === 0) return true;
    this.sender.send(encodeData(streamId, chunk));
    return this.sender.ready;
  }

  end(streamId: string): void {
    const s = this.streams.get(streamId);
    if (!s) return;
    if (s.kind === 'http') {
      if (s.sent) return;
      s.sent = true;
      if (refusedForBacklog(this.ws.bufferedAmount, this.options.requestBacklogBytes, streamId, this.handler)) {
        this.giveBack(s).clear();
        return;
      }
      const body = this.giveBack(s).take();
      this.sendControl(encodeHttpRequest(streamId, s.head.method, s.head.path, joinHeaders(s.head.headers), body));
      return;
    }
    if (s.closed) return;
    // v1 has no half-close: tcp_close ends the connection both ways.
    s.closed = true;
    this.sendControl(encodeTcpClose(streamId));
    queueMicrotask(() => this.handler?.onStreamEvent(streamId, { type: 'close' }));
  }

  release(streamId: string): void {
    const s = this.streams.get(streamId);
    if (!s) return;
    this.streams.delete(streamId);
    if (s.kind === 'http') this.giveBack(s).clear();
    this.resumeInbound(streamId);
    this.droppingInbound.delete(streamId);
    this.truncatedInbound.delete(streamId);
    if (s.kind === 'tcp' && !s.closed) this.sendControl(encodeTcpClose(streamId));
  }

  /** Gives the bytes of a request's body back to the budget; the caller then takes the body or clears it. */
  private giveBack(s: HttpState): HeldBody {
    this.options.bodyBudget.give(s.body.bytes, s.head.requester ?? '');
    return s.body;
  }

  pauseInbound(streamId: string): void {
    if (this.pausedInbound.has(streamId) || !this.streams.has(streamId)) return;
    if (this.closing) return void this.droppingInbound.add(streamId);
    if (this.pausedInbound.size === 0) this.ws.pause();
    const allowedMs = this.stalls.remainingMs();
    const timer = setTimeout(() => {
      this.stalls.charge(allowedMs);
      this.resumeInbound(streamId);
      this.handler?.onStreamEvent(streamId, { type: 'reset', reason: 'local reader stalled the tunnel' });
    }, allowedMs);
    timer.unref();
    this.pausedInbound.set(streamId, timer);
  }

  resumeInbound(streamId: string): void {
    const timer = this.pausedInbound.get(streamId);
    if (!timer) return;
    clearTimeout(timer);
    this.pausedInbound.delete(streamId);
    if (this.pausedInbound.size === 0) this.ws.resume();
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
    if (this.closing) return;
    this.closing = true;
    // Paused for a slow local reader, the WebSocket would read the client's answer to this close only after the
    // stall allowance (up to 30 s: a drain's whole deadline), as it waits behind the data for that reader. Read
    // on; what comes for the streams that were waiting is dropped.
    if (this.pausedInbound.size === 0) return;
    for (const streamId of this.pausedInbound.keys()) {
      clearTimeout(this.pausedInbound.get(streamId));
      this.droppingInbound.add(streamId);
    }
    this.pausedInbound.clear();
    this.ws.resume();
  }

  private sendControl(json: string): void {
    this.sender.send(this.options.controlBinary ? Buffer.from(json, 'utf8') : json);
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    const frame = decodeFrame(data, isBinary);
    if (!frame || !this.handler) return;
    if (frame.kind === 'data') {
      const s = this.streams.get(frame.connId);
      if (s?.kind === 'tcp' && !s.closed && frame.payload.length > 0) {
        if (this.droppingInbound.has(frame.connId)) this.truncatedInbound.add(frame.connId);
        else this.handler.onStreamEvent(frame.connId, { type: 'data', chunk: frame.payload });
      }
      return;
    }
    const m = frame.message;
    if (m.type === 'http_response') this.onHttpResponse(m);
    else if (m.type === 'tcp_close' && typeof m.connId === 'string') {
      const s = this.streams.get(m.connId);
      if (s?.kind !== 'tcp' || s.closed) return;
      s.closed = true;
      // Bytes of this stream were dropped: its reader must not take what it got for the whole.
      if (this.truncatedInbound.has(m.connId)) this.handler.onStreamEvent(m.connId, { type: 'reset', reason: 'stream truncated while the tunnel closed' });
      else this.handler.onStreamEvent(m.connId, { type: 'close' });
    }
    // Unknown types are ignored (forward compatibility), never fatal.
  }

  private onHttpResponse(m: Record<string, unknown>): void {
    const id = m.id;
    if (typeof id !== 'string') return;
    const s = this.streams.get(id);
    if (s?.kind !== 'http' || !s.sent) return;
    this.streams.delete(id);
    const handler = this.handler!;
    const events = parseHttpResponse(m);
    // A v1 response arrives whole; it stays in memory until its requester has taken it, so it is held against the body budget.
    const at = events.findIndex((ev) => ev.type === 'data');
    const body = events[at];
    if (body?.type === 'data') {
      const key = s.head.requester ?? '';
      const budget = this.options.bodyBudget;
      // A response larger than an address's share (the share is sized for request bodies) counts as the whole share.
      const n = Math.min(body.chunk.length, budget.perKeyLimit, budget.limit);
      if (!budget.take(n, key)) {
        handler.onStreamEvent(id, { type: 'reset', reason: 'too many responses waiting for their requesters', status: 503 });
        return;
      }
      events[at] = { type: 'data', chunk: body.chunk, flushed: () => budget.give(n, key) };
    }
    for (const ev of events) handler.onStreamEvent(id, ev);
  }
}

/** Turns an `http_response` into stream events: head, data, end — or one `malformed`. */
function parseHttpResponse(m: Record<string, unknown>): InboundStreamEvent[] {
  const status = m.status;
  if (typeof status !== 'number' || !Number.isInteger(status)) return [{ type: 'malformed', reason: 'status is not an integer' }];
  let body: Uint8Array | null = null;
  if (m.body !== undefined && m.body !== null) {
    if (typeof m.body !== 'string') return [{ type: 'malformed', reason: 'body is not a string' }];
    if (m.bodyEncoding === undefined || m.bodyEncoding === null) body = utf8ToBytes(m.body);
    else if (m.bodyEncoding === 'base64') body = base64ToBytes(m.body);
    else return [{ type: 'malformed', reason: 'unknown bodyEncoding' }];
    if (!body) return [{ type: 'malformed', reason: 'body is not base64' }];
  }
  const headers: [string, string][] = [];
  if (typeof m.headers === 'object' && m.headers !== null && !Array.isArray(m.headers)) {
    for (const [name, value] of Object.entries(m.headers as Record<string, unknown>)) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (typeof v === 'string') headers.push([name.toLowerCase(), v]);
        else if (typeof v === 'number' && Number.isFinite(v)) headers.push([name.toLowerCase(), String(v)]);
      }
    }
  }
  const events: InboundStreamEvent[] = [{ type: 'head', head: { status, headers, bodyLength: body?.length ?? 0 } }];
  if (body && body.length > 0) events.push({ type: 'data', chunk: body });
  events.push({ type: 'end' });
  return events;
}

/** v1 sends one value per header name: repeated headers joined with ", ". */
function joinHeaders(headers: HttpRequestHead['headers']): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of headers) out[name] = Object.hasOwn(out, name) ? `${out[name]}, ${value}` : value;
  return out;
}
