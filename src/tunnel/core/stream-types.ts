/**
 * The vocabulary between a tunnel session (protocol-agnostic: streams) and the
 * wire codec of its WebSocket (v1 JSON/binary today, v2 frames later).
 *
 * A tunnel multiplexes streams. Each stream is opened by the proxy with a head
 * (an HTTP request head, a raw TCP connection; v2 adds WebSockets), carries
 * bytes both ways, and ends. The session never sees the wire format; the codec
 * never sees sockets or HTTP responses.
 */

/** Header fields in order; a repeated header appears once per value. Names are lowercase. */
export type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;

/** What an HTTP exchange stream opens with. */
export interface HttpRequestHead {
  readonly method: string;
  /** Origin-form request target: path and query. */
  readonly path: string;
  /** Already cleaned for the client (see header-hygiene). */
  readonly headers: HeaderList;
  /** The request has no body (no Transfer-Encoding, no or a zero Content-Length): a codec may say so with the head. */
  readonly bodyless?: boolean;
  /** The requester's IP as the per-IP limits count it (`ipLimitKey`), for accounting per requester; never sent to the client. */
  readonly requester?: string;
}

/** The opening of a stream, by kind. `websocket` (a WebSocket upgrade request) needs a wire that `carriesWebSockets`. */
export type StreamOpen =
  | { readonly kind: 'http'; readonly head: HttpRequestHead }
  | { readonly kind: 'websocket'; readonly head: HttpRequestHead }
  | { readonly kind: 'tcp' };

export type StreamKind = StreamOpen['kind'];

/** The response head of an HTTP stream, as the client sent it (not yet cleaned). */
export interface ResponseHead {
  readonly status: number;
  readonly headers: HeaderList;
  /** Total body length when the codec knows it up front (v1 always does). */
  readonly bodyLength?: number;
}

/** What the client did on a stream, decoded by the codec. */
export type InboundStreamEvent =
  /** The response head of an HTTP stream. */
  | { readonly type: 'head'; readonly head: ResponseHead }
  /**
   * Bytes from the client's side of the stream. `flushed`, when set, must be
   * called once they have left the process (or never will): the codec holds
   * them against a budget until then.
   */
  | { readonly type: 'data'; readonly chunk: Uint8Array; readonly flushed?: () => void }
  /** The client's side has no more data (half-close; the other direction may go on). */
  | { readonly type: 'end' }
  /** The stream is over both ways: flush what is queued locally, then close. */
  | { readonly type: 'close' }
  /** The stream is aborted: drop what is queued and close at once. */
  | { readonly type: 'reset'; readonly reason: string; /** What an HTTP request still unanswered gets (502 when absent). */ readonly status?: number }
  /** The client's response was unusable (malformed); the stream fails with 502. */
  | { readonly type: 'malformed'; readonly reason: string }
  /** WebSocket streams: a message, or a fragment of one (`fin` on the last), from the client's side. */
  | { readonly type: 'message'; readonly chunk: Uint8Array; readonly binary: boolean; readonly fin: boolean }
  /** WebSocket streams: the client's WebSocket closed with this code (1005: no code, 1006: dropped). */
  | { readonly type: 'wsclose'; readonly code: number; readonly reason: string };

/** The session side: the codec reports decoded events here. */
export interface TunnelWireHandler {
  onStreamEvent(streamId: string, event: InboundStreamEvent): void;
  /** Sending may go on: for one stream, or (`null`) for every stream that was told to wait. */
  onWritable(streamId: string | null): void;
  /**
   * The WebSocket closed (either side); every stream is gone. `forClientFrames`: the proxy closed it for
   * frames of the client's that broke the protocol (1002, 1007, 1008, 1009).
   */
  onClose(code: number, reason: string, forClientFrames: boolean): void;
}

/** What the registration announces. */
export interface TunnelReadyInfo {
  /** `https://<sub>.<TUNNEL_DOMAIN>`, or empty without a tunnel domain. */
  readonly tunnelUrl: string;
  /** 0 when there is no raw TCP port. */
  readonly rawPort: number;
}

/**
 * One tunnel WebSocket as a stream transport. The session calls, for each
 * stream, `open`, any number of `data`, `end` when its side is done, and
 * exactly once `release` when the stream is gone for any reason.
 */
export interface TunnelWire {
  /** Protocol version spoken on this WebSocket. */
  readonly version: number;
  /** Whether this protocol can carry WebSocket upgrades through the tunnel (v2). */
  readonly carriesWebSockets: boolean;
  attach(handler: TunnelWireHandler): void;
  /** Announces the registration (first message on the WebSocket). */
  ready(info: TunnelReadyInfo): void;
  /** A fresh stream id, unique on this wire. */
  allocateStreamId(kind: StreamKind): string;
  open(streamId: string, open: StreamOpen): void;
  /** Sends bytes of the proxy's side. `false`: stop until `onWritable` for this stream (or `null`). */
  data(streamId: string, chunk: Uint8Array): boolean;
  /** The proxy's side has no more data. */
  end(streamId: string): void;
  /** The stream is gone (finished, aborted, timed out); the codec drops its state and tells the client if it must. */
  release(streamId: string): void;
  /**
   * The proxy's side has ended (`end`) but what it sent still waits in the codec (v2: for the client's
   * credit): true, and `sent` is called once the end is out; false when nothing waits. A wire without it
   * sends at once.
   */
  whenSent?(streamId: string, sent: () => void): boolean;
  /** The local receiver of a stream is full: stop delivering its data until `resumeInbound`. */
  pauseInbound(streamId: string): void;
  resumeInbound(streamId: string): void;
  /** Closes the WebSocket with `code` after what is queued. */
  close(code: number, reason: string): void;
  /** Bytes queued towards the client (for diagnostics and tests). */
  readonly bufferedAmount: number;
}

/** A wire that carries WebSocket streams (protocol v2). */
export interface WebSocketWire extends TunnelWire {
  readonly carriesWebSockets: true;
  /** One whole message from the requester. `false`: stop until `onWritable` for this stream. */
  message(streamId: string, chunk: Uint8Array, binary: boolean): boolean;
  /** The requester's WebSocket closed with `code` (after the messages sent before). */
  closeWebSocket(streamId: string, code: number, reason: string): void;
}

export function carriesWebSockets(wire: TunnelWire): wire is WebSocketWire {
  return wire.carriesWebSockets;
}
