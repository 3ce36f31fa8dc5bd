/**
 * Tunnel protocol v1 (the seed protocol gossh-wasm speaks), byte for byte. See
 * docs/tunnel-protocol.md.
 *
 * Pure encoding and decoding shared by the proxy and the reference client. It
 * uses only what a browser also has (Uint8Array, TextEncoder/TextDecoder,
 * JSON, btoa/atob), taking Node's Buffer only as a faster path when present.
 */

/** Proxy → client, once, on registration. */
export interface TunnelReadyMessage {
  readonly type: 'tunnel_ready';
  readonly tunnelUrl: string;
  readonly rawPort: number;
}

/** Proxy → client: one whole HTTP request. Header values of repeated headers are joined with ", ". */
export interface HttpRequestMessage {
  readonly type: 'http_request';
  readonly id: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  /** Absent when the request has no body. */
  readonly body?: string;
  readonly bodyEncoding?: 'base64';
}

/** Client → proxy: the whole response to an `http_request` of the same id. */
export interface HttpResponseMessage {
  readonly type: 'http_response';
  readonly id: string;
  readonly status: number;
  readonly headers?: Record<string, string | string[]>;
  readonly body?: string;
  /** `base64`, or absent: the body is UTF-8 text. */
  readonly bodyEncoding?: string;
}

/** Proxy → client: a TCP connection arrived on the tunnel's raw port. */
export interface TcpOpenMessage {
  readonly type: 'tcp_open';
  readonly connId: string;
}

/** Either way: the TCP connection is over. */
export interface TcpCloseMessage {
  readonly type: 'tcp_close';
  readonly connId: string;
}

export type V1ControlMessage = TunnelReadyMessage | HttpRequestMessage | HttpResponseMessage | TcpOpenMessage | TcpCloseMessage;

/** A decoded frame: a control message (only `type` checked here), or TCP payload of one connection. */
export type V1Frame =
  | { readonly kind: 'control'; readonly message: { readonly type: string } & Record<string, unknown> }
  | { readonly kind: 'data'; readonly connId: string; readonly payload: Uint8Array };

/** The longest connId a data frame may name; real ones are 12 characters. */
export const MAX_CONN_ID_BYTES = 64;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });

/** `{"type":"tunnel_ready","tunnelUrl":…,"rawPort":…}` */
export function encodeTunnelReady(tunnelUrl: string, rawPort: number): string {
  const m: TunnelReadyMessage = { type: 'tunnel_ready', tunnelUrl, rawPort };
  return JSON.stringify(m);
}

/** `{"type":"http_request","id":…,"method":…,"path":…,"headers":{…}[,"body":…,"bodyEncoding":"base64"]}` */
export function encodeHttpRequest(id: string, method: string, path: string, headers: Record<string, string>, body: Uint8Array | null): string {
  const m: HttpRequestMessage =
    body && body.length > 0
      ? { type: 'http_request', id, method, path, headers, body: bytesToBase64(body), bodyEncoding: 'base64' }
      : { type: 'http_request', id, method, path, headers };
  return JSON.stringify(m);
}

/** `{"type":"http_response","id":…,"status":…,"headers":{…}[,"body":…,"bodyEncoding":"base64"]}` (body always base64 here). */
export function encodeHttpResponse(id: string, status: number, headers: Record<string, string | string[]>, body: Uint8Array | null): string {
  const m: HttpResponseMessage =
    body && body.length > 0
      ? { type: 'http_response', id, status, headers, body: bytesToBase64(body), bodyEncoding: 'base64' }
      : { type: 'http_response', id, status, headers };
  return JSON.stringify(m);
}

export function encodeTcpOpen(connId: string): string {
  const m: TcpOpenMessage = { type: 'tcp_open', connId };
  return JSON.stringify(m);
}

export function encodeTcpClose(connId: string): string {
  const m: TcpCloseMessage = { type: 'tcp_close', connId };
  return JSON.stringify(m);
}

/** A TCP payload frame: 4-byte big-endian length of the connId, the connId bytes, the payload. */
export function encodeData(connId: string, payload: Uint8Array): Uint8Array {
  const id = encoder.encode(connId);
  const out = allocBytes(4 + id.length + payload.length);
  new DataView(out.buffer, out.byteOffset, 4).setUint32(0, id.length, false);
  out.set(id, 4);
  out.set(payload, 4 + id.length);
  return out;
}

/**
 * Decodes one WebSocket message. Text frames are control messages; binary
 * frames are control messages when they start with `{` (JSON, `control=binary`
 * or a client that sends control as binary) and TCP payload otherwise. Anything
 * malformed decodes to `null` and is to be ignored, never fatal.
 */
export function decodeFrame(data: Uint8Array | string, binary: boolean): V1Frame | null {
  if (typeof data === 'string') return decodeControl(data);
  if (!binary || looksLikeJson(data)) return decodeControl(decoder.decode(data));
  if (data.length < 4) return null;
  const idLen = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, false);
  if (idLen === 0 || idLen > MAX_CONN_ID_BYTES || 4 + idLen > data.length) return null;
  const connId = decoder.decode(data.subarray(4, 4 + idLen));
  return { kind: 'data', connId, payload: data.subarray(4 + idLen) };
}

function looksLikeJson(data: Uint8Array): boolean {
  for (const b of data) {
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
    return b === 0x7b;
  }
  return false;
}

function decodeControl(text: string): V1Frame | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  const message = parsed as Record<string, unknown>;
  if (typeof message.type !== 'string') return null;
  return { kind: 'control', message: message as { type: string } & Record<string, unknown> };
}

type BufferLike = {
  from(b: ArrayBufferLike, off: number, len: number): { toString(enc: 'base64'): string };
  from(s: string, enc: 'base64' | 'utf8'): Uint8Array;
  allocUnsafe(n: number): Uint8Array;
};
const NodeBuffer = (globalThis as { Buffer?: BufferLike }).Buffer;

function allocBytes(n: number): Uint8Array {
  return NodeBuffer ? NodeBuffer.allocUnsafe(n) : new Uint8Array(n);
}

/** Standard base64 (with padding) of `bytes`. */
export function bytesToBase64(bytes: Uint8Array): string {
  if (NodeBuffer) return NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** Bytes of a base64 string (standard or URL alphabet, padding optional); `null` when it is not base64. */
export function base64ToBytes(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/\-_]*={0,2}$/.test(text)) return null;
  if (NodeBuffer) return NodeBuffer.from(text, 'base64');
  try {
    const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/** UTF-8 bytes of a text body (`bodyEncoding` absent). */
export function utf8ToBytes(text: string): Uint8Array {
  return encoder.encode(text);
}
