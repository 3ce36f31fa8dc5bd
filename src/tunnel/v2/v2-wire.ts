import { WebSocket } from 'ws';
import { onWebSocketEnd } from '../../common/protocol-close.js';
import type {
  InboundStreamEvent,
  StreamKind,
  StreamOpen,
  TunnelReadyInfo,
  TunnelWireHandler,
  WebSocketWire,
} from '../core/stream-types.js';
import { R } from '../protocol/v2.js';
import { V2Mux } from '../protocol/v2-mux.js';
import { FrameSender } from '../core/frame-sender.js';
import { refusedForBacklog } from '../core/client-backlog.js';

/**
 * Bytes the proxy lets pile up in a v2 tunnel WebSocket's send buffer before
 * flow-controlled frames wait for it to drain. Credit bounds each stream; this
 * bounds the whole WebSocket when the client reads slower than it grants.
 */
export const V2_WS_HIGH_WATER = 1024 * 1024;

const RESET_REASONS: Record<number, string> = {
  [R.CANCEL]: 'cancelled by the tunnel client',
  [R.PROTOCOL_ERROR]: 'protocol error',
  [R.FLOW_CONTROL_ERROR]: 'flow control error',
  [R.REFUSED]: 'refused by the tunnel client',
  [R.INTERNAL_ERROR]: 'tunnel client error',
};

/**
 * The v2 codec: binary frames with per-stream credit on one WebSocket
 * (docs/tunnel-protocol.md, "Protocol v2"). Streams never wait for each
 * other: a consumer that cannot keep up pauses only its own stream (at most
 * the window is held for it), and the WebSocket itself is never paused.
 */
export class V2Wire implements WebSocketWire {
  readonly version = 2;
  readonly carriesWebSockets = true as const;
  private nextId = 1;
  private readonly mux: V2Mux;
  private readonly sender: FrameSender;
  private handler: TunnelWireHandler | null = null;

  /**
   * `window`: the credit granted per stream (at least the protocol's initial window). `requestBacklogBytes`:
   * send-buffer bytes past which a new request or upgrade is answered 503 instead of opened: OPEN frames are
   * not flow-controlled, and a client that stops reading would otherwise collect every visitor's head.
   */
  constructor(
    private readonly ws: WebSocket,
    private readonly options: { readonly window?: number; readonly requestBacklogBytes?: number } = {},
  ) {
    this.sender = new FrameSender(ws, V2_WS_HIGH_WATER, () => this.mux.transportDrained());
    this.mux = new V2Mux({ role: 'proxy', send: (f) => this.sender.send(f), transportReady: () => this.sender.ready, window: options.window });
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Bytes held in the codec: received for paused consumers, and waiting for credit (diagnostics, tests). */
  held(): { inbound: number; outbound: number } {
    return this.mux.buffered();
  }

  attach(handler: TunnelWireHandler): void {
    this.handler = handler;
    const ev = (id: number, event: InboundStreamEvent): void => handler.onStreamEvent(String(id), event);
    this.mux.attach({
      response: (id, head) => ev(id, { type: 'head', head: { status: head.status, headers: head.headers, bodyLength: head.length } }),
      data: (id, chunk) => ev(id, { type: 'data', chunk }),
      end: (id) => ev(id, { type: 'end' }),
      message: (id, chunk, binary, fin) => ev(id, { type: 'message', chunk, binary, fin }),
      close: (id, code, reason) => ev(id, { type: 'wsclose', code, reason }),
      reset: (id, code, reason) => ev(id, { type: 'reset', reason: reason || RESET_REASONS[code] || `reset ${code}` }),
      malformed: (id, reason) => ev(id, { type: 'malformed', reason }),
      writable: (id) => handler.onWritable(String(id)),
    });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      // v2 is binary only; a text frame is ignored like any other unusable frame.
      if (isBinary) this.mux.receive(data);
    });
    onWebSocketEnd(this.ws, (code, reason, forClientFrames) => {
      this.mux.clear();
      handler.onClose(code, reason, forClientFrames);
    });
  }

  ready(info: TunnelReadyInfo): void {
    this.mux.ready(info.tunnelUrl, info.rawPort);
  }

  allocateStreamId(_kind: StreamKind): string {
    // 2^32 - 1 streams per tunnel; a tunnel that used them all is closed.
    if (this.nextId > 0xffffffff) this.close(1011, 'stream ids exhausted');
    return String(this.nextId++);
  }

  open(streamId: string, open: StreamOpen): void {
    const id = Number(streamId);
    if (open.kind === 'tcp') return this.mux.open(id, { kind: 'tcp' });
    // Never opened in the mux, the stream takes what its requester sends and drops it until the refusal ends it.
    if (refusedForBacklog(this.ws.bufferedAmount, this.options.requestBacklogBytes ?? Infinity, streamId, this.handler)) return;
    this.mux.open(id, { kind: open.kind, method: open.head.method, path: open.head.path, headers: open.head.headers }, open.head.bodyless === true);
  }

  data(streamId: string, chunk: Uint8Array): boolean {
    return this.mux.data(Number(streamId), chunk);
  }

  end(streamId: string): void {
    this.mux.end(Number(streamId));
  }

  message(streamId: string, chunk: Uint8Array, binary: boolean): boolean {
    return this.mux.message(Number(streamId), chunk, binary);
  }

  closeWebSocket(streamId: string, code: number, reason: string): void {
    this.mux.close(Number(streamId), code, reason);
  }

  release(streamId: string): void {
    this.mux.release(Number(streamId));
  }

  whenSent(streamId: string, sent: () => void): boolean {
    return this.mux.whenSent(Number(streamId), sent);
  }

  pauseInbound(streamId: string): void {
    this.mux.pause(Number(streamId));
  }

  resumeInbound(streamId: string): void {
    this.mux.resume(Number(streamId));
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
  }
}
