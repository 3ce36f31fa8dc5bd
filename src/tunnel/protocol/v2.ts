/**
 * Tunnel protocol v2: one binary frame per WebSocket message. See
 * docs/tunnel-protocol.md ("Protocol v2").
 *
 * ```
 * 0        1        2                                   6
 * +--------+--------+-----------------------------------+----------------
 * |  type  | flags  |   stream id (u32, big-endian)     |  payload ...
 * +--------+--------+-----------------------------------+----------------
 * ```
 *
 * Pure encoding and decoding shared by the proxy and the reference client,
 * using only what a browser also has (Uint8Array, DataView, TextEncoder,
 * JSON). The decoder never throws and never copies: payloads are views into
 * the message, and a message longer than `V2_MAX_FRAME_BYTES` is rejected
 * before anything else is looked at.
 */

import { MAX_CLOSE_REASON_BYTES } from '../../common/close-reason.js';

export const V2_HEADER_BYTES = 6;
/** Largest payload of any frame. */
export const V2_MAX_PAYLOAD = 1024 * 1024;
/** Largest frame (one WebSocket message) either side accepts. */
export const V2_MAX_FRAME_BYTES = V2_HEADER_BYTES + V2_MAX_PAYLOAD;
/** Senders cut DATA and MESSAGE payloads into pieces of at most this size. */
export const V2_DATA_CHUNK = 64 * 1024;
/** Every stream starts with this much credit in each direction. */
export const V2_INITIAL_WINDOW = 256 * 1024;
/**
 * A client whose proxy announced `creditByHalf` splits a payload to fit its
 * credit only when at least this much is left (or the payload fits whole): a
 * sliver of credit waits for the next WINDOW_UPDATE instead of costing a frame
 * of its own on every hop. Safe because such a proxy gives credit back by the
 * time it has handed on half its window (at least 128 KiB), more than the
 * client can be holding back. The proxy itself always splits: a client's
 * credit policy is not announced.
 */
export const V2_MIN_SPLIT = 32 * 1024;
/** Credit may never exceed this (as in HTTP/2). */
export const V2_MAX_WINDOW = 0x7fffffff;
/** Header fields taken from one head; more are ignored. */
export const V2_MAX_HEADER_FIELDS = 1000;

/** Frame types. */
export const T = {
  /** Proxy → client, stream 0, once: the `tunnel_ready` JSON. */
  READY: 0x01,
  /** Proxy → client: opens a stream; JSON head (`kind`, and for http/websocket `method`, `path`, `headers`). */
  OPEN: 0x02,
  /** Client → proxy: the response head of an http or websocket stream (JSON). */
  RESPONSE: 0x03,
  /** Either way: stream bytes (HTTP body, TCP payload, a refused WebSocket's body). Flow-controlled. */
  DATA: 0x04,
  /** Either way: a WebSocket message or a fragment of one. Flow-controlled. */
  MESSAGE: 0x05,
  /** Either way: the WebSocket of a stream closed on that side (u16 code + UTF-8 reason, or empty). */
  CLOSE: 0x06,
  /** Either way: more credit for the stream (u32 increment). */
  WINDOW_UPDATE: 0x07,
  /** Either way: the stream is aborted (u16 code + UTF-8 reason). */
  RESET: 0x08,
} as const;

/** OPEN, RESPONSE, DATA: the sender's side of the stream is finished. */
export const FLAG_END = 0x01;
/** MESSAGE: last fragment of a WebSocket message. */
export const FLAG_FIN = 0x01;
/** MESSAGE: the message is binary (otherwise text); set on every fragment of it. */
export const FLAG_BINARY = 0x02;
/**
 * RESPONSE: the JSON head is followed by one 0x00 byte and the first body
 * bytes (flow-controlled like DATA). Sent only to a proxy whose READY says
 * `inlineBody`; with END the whole (small) response is one frame.
 */
export const FLAG_BODY = 0x02;

/** RESET codes. */
export const R = {
  CANCEL: 0,
  PROTOCOL_ERROR: 1,
  FLOW_CONTROL_ERROR: 2,
  REFUSED: 3,
  INTERNAL_ERROR: 4,
} as const;

export type V2StreamKind = 'http' | 'websocket' | 'tcp';

/** Header fields in order; a repeated header appears once per value. */
export type V2Headers = ReadonlyArray<readonly [name: string, value: string]>;

/** What the proxy announces on READY. */
export interface V2Ready {
  readonly tunnelUrl: string;
  readonly rawPort: number;
  /** The version announced: 2 from this proxy; 0 when READY had none (or not an integer). */
  readonly version: number;
  /** Initial credit per stream and direction. */
  readonly window: number;
  /** Largest frame payload accepted. */
  readonly maxPayload: number;
  /** The proxy accepts body bytes inline in RESPONSE (`FLAG_BODY`). */
  readonly inlineBody: boolean;
  /** The proxy gives credit back by the time it has handed on half a window: the client may hold back slivers (`V2_MIN_SPLIT`). */
  readonly creditByHalf: boolean;
}

/** What a stream opens with. */
export type V2OpenHead =
  | { readonly kind: 'http' | 'websocket'; readonly method: string; readonly path: string; readonly headers: V2Headers }
  | { readonly kind: 'tcp' };

/** The client's answer on an http or websocket stream. */
export interface V2ResponseHead {
  readonly status: number;
  readonly headers: V2Headers;
  /** Body length when known (the proxy then sends Content-Length and holds the client to it). */
  readonly length?: number;
}

export type V2Frame =
  | { readonly type: 'ready'; readonly stream: number; readonly ready: V2Ready }
  | { readonly type: 'open'; readonly stream: number; readonly head: V2OpenHead; readonly end: boolean }
  | { readonly type: 'response'; readonly stream: number; readonly head: V2ResponseHead; readonly end: boolean; readonly body: Uint8Array | null }
  | { readonly type: 'data'; readonly stream: number; readonly payload: Uint8Array; readonly end: boolean }
  | { readonly type: 'message'; readonly stream: number; readonly payload: Uint8Array; readonly binary: boolean; readonly fin: boolean }
  | { readonly type: 'close'; readonly stream: number; readonly code: number; readonly reason: string }
  | { readonly type: 'window'; readonly stream: number; readonly increment: number }
  | { readonly type: 'reset'; readonly stream: number; readonly code: number; readonly reason: string }
  | { readonly type: 'unknown'; readonly stream: number; readonly frameType: number };

/**
 * A decoded message: a frame, or why it is unusable. `stream` is set when the
 * header was readable, so a receiver can fail that one stream; `null` when not
 * even the header was (the message is ignored).
 */
export type V2Decoded = { readonly ok: true; readonly frame: V2Frame } | { readonly ok: false; readonly stream: number | null; readonly reason: string };

/** The close code carried by an empty CLOSE payload ("no status received"). */
export const NO_STATUS = 1005;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });

type NodeBufferish = Uint8Array & { write(s: string, offset: number): number };
type BufferLike = { allocUnsafe(n: number): NodeBufferish; byteLength(s: string): number };
const NodeBuffer = (globalThis as { Buffer?: BufferLike }).Buffer;

/** Node's pooled allocation where there is one (no ArrayBuffer per frame), a Uint8Array elsewhere. */
function alloc(n: number): Uint8Array {
  return NodeBuffer ? NodeBuffer.allocUnsafe(n) : new Uint8Array(n);
}

function writeHeader(out: Uint8Array, type: number, flags: number, stream: number): void {
  out[0] = type;
  out[1] = flags;
  out[2] = (stream >>> 24) & 0xff;
  out[3] = (stream >>> 16) & 0xff;
  out[4] = (stream >>> 8) & 0xff;
  out[5] = stream & 0xff;
}

/** One frame: the 6-byte header followed by `payload`. */
export function encodeFrame(type: number, flags: number, stream: number, payload?: Uint8Array): Uint8Array {
  const len = payload ? payload.length : 0;
  const out = alloc(V2_HEADER_BYTES + len);
  writeHeader(out, type, flags, stream);
  if (payload && len > 0) out.set(payload, V2_HEADER_BYTES);
  return out;
}

/** A frame whose payload is `value` as JSON, then (with `body`) a 0x00 byte and the body. */
function jsonFrame(type: number, flags: number, stream: number, value: unknown, body?: Uint8Array): Uint8Array {
  const json = JSON.stringify(value);
  const tail = body ? 1 + body.length : 0;
  let out: Uint8Array;
  let at: number;
  if (NodeBuffer) {
    // Straight into the frame: no intermediate encoded copy per head.
    const n = NodeBuffer.byteLength(json);
    const b = NodeBuffer.allocUnsafe(V2_HEADER_BYTES + n + tail);
    b.write(json, V2_HEADER_BYTES);
    out = b;
    at = V2_HEADER_BYTES + n;
  } else {
    const bytes = encoder.encode(json);
    out = new Uint8Array(V2_HEADER_BYTES + bytes.length + tail);
    out.set(bytes, V2_HEADER_BYTES);
    at = V2_HEADER_BYTES + bytes.length;
  }
  writeHeader(out, type, flags, stream);
  if (body) {
    out[at] = 0;
    out.set(body, at + 1);
  }
  return out;
}

/** READY: `{"type":"tunnel_ready","tunnelUrl":…,"rawPort":…,"version":2,"window":…,"maxPayload":…}` on stream 0. */
export function encodeReady(tunnelUrl: string, rawPort: number): Uint8Array {
  return jsonFrame(T.READY, 0, 0, {
    type: 'tunnel_ready',
    tunnelUrl,
    rawPort,
    version: 2,
    window: V2_INITIAL_WINDOW,
    maxPayload: V2_MAX_PAYLOAD,
    inlineBody: true,
    creditByHalf: true,
  });
}

export function encodeOpen(stream: number, head: V2OpenHead, end = false): Uint8Array {
  const value = head.kind === 'tcp' ? { kind: 'tcp' } : { kind: head.kind, method: head.method, path: head.path, headers: head.headers };
  return jsonFrame(T.OPEN, end ? FLAG_END : 0, stream, value);
}

/** RESPONSE; with `body`, its first bytes inline (`FLAG_BODY`: only to a proxy whose READY has `inlineBody`). */
export function encodeResponse(stream: number, head: V2ResponseHead, end = false, body?: Uint8Array): Uint8Array {
  const value = head.length === undefined ? { status: head.status, headers: head.headers } : { status: head.status, headers: head.headers, length: head.length };
  return jsonFrame(T.RESPONSE, (end ? FLAG_END : 0) | (body ? FLAG_BODY : 0), stream, value, body);
}

export function encodeData(stream: number, payload: Uint8Array, end = false): Uint8Array {
  return encodeFrame(T.DATA, end ? FLAG_END : 0, stream, payload);
}

export function encodeMessage(stream: number, payload: Uint8Array, binary: boolean, fin: boolean): Uint8Array {
  return encodeFrame(T.MESSAGE, (fin ? FLAG_FIN : 0) | (binary ? FLAG_BINARY : 0), stream, payload);
}

/** CLOSE: `code` 1005 (no status) is sent as an empty payload. */
export function encodeClose(stream: number, code: number, reason: string): Uint8Array {
  if (code === NO_STATUS) return encodeFrame(T.CLOSE, 0, stream);
  return encodeFrame(T.CLOSE, 0, stream, codeAndText(code, reason));
}

export function encodeWindowUpdate(stream: number, increment: number): Uint8Array {
  const out = alloc(V2_HEADER_BYTES + 4);
  writeHeader(out, T.WINDOW_UPDATE, 0, stream);
  const n = increment >>> 0;
  out[6] = (n >>> 24) & 0xff;
  out[7] = (n >>> 16) & 0xff;
  out[8] = (n >>> 8) & 0xff;
  out[9] = n & 0xff;
  return out;
}

export function encodeReset(stream: number, code: number, reason: string): Uint8Array {
  return encodeFrame(T.RESET, 0, stream, codeAndText(code, reason));
}

function codeAndText(code: number, text: string): Uint8Array {
  const t = encoder.encode(text.length > 256 ? text.slice(0, 256) : text);
  const p = alloc(2 + t.length);
  new DataView(p.buffer, p.byteOffset, 2).setUint16(0, code & 0xffff, false);
  p.set(t, 2);
  return p;
}

const u16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;
const u32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

const bad = (stream: number | null, reason: string): V2Decoded => ({ ok: false, stream, reason });

/**
 * Decodes one WebSocket message as one frame. Never throws; never allocates
 * more than the message itself (JSON heads are parsed from at most
 * `V2_MAX_PAYLOAD` bytes).
 */
export function decodeFrame(data: Uint8Array): V2Decoded {
  try {
    return decodeUnchecked(data);
  } catch {
    return bad(null, 'undecodable frame');
  }
}

function decodeUnchecked(data: Uint8Array): V2Decoded {
  if (!(data instanceof Uint8Array)) return bad(null, 'not bytes');
  if (data.length > V2_MAX_FRAME_BYTES) return bad(null, 'frame too large');
  if (data.length < V2_HEADER_BYTES) return bad(null, 'truncated header');
  const type = data[0];
  const flags = data[1];
  const stream = u32(data, 2);
  const payload = data.subarray(V2_HEADER_BYTES);
  switch (type) {
    case T.READY: {
      if (stream !== 0) return bad(stream, 'READY on a stream');
      const o = parseJsonObject(payload);
      if (!o || o.type !== 'tunnel_ready') return bad(0, 'malformed READY');
      return {
        ok: true,
        frame: {
          type: 'ready',
          stream,
          ready: {
            tunnelUrl: typeof o.tunnelUrl === 'string' ? o.tunnelUrl : '',
            rawPort: isUint(o.rawPort, 65535) ? o.rawPort : 0,
            // As announced (0: none, or not an integer): the client refuses anything but 2.
            version: isUint(o.version, 0xffff) ? o.version : 0,
            window: isUint(o.window, V2_MAX_WINDOW) && o.window > 0 ? o.window : V2_INITIAL_WINDOW,
            maxPayload: isUint(o.maxPayload, V2_MAX_PAYLOAD) && o.maxPayload >= V2_DATA_CHUNK ? o.maxPayload : V2_MAX_PAYLOAD,
            inlineBody: o.inlineBody === true,
            creditByHalf: o.creditByHalf === true,
          },
        },
      };
    }
    case T.OPEN: {
      if (stream === 0) return bad(null, 'OPEN on stream 0');
      const head = parseOpenHead(parseJsonObject(payload));
      if (!head) return bad(stream, 'malformed OPEN');
      return { ok: true, frame: { type: 'open', stream, head, end: (flags & FLAG_END) !== 0 } };
    }
    case T.RESPONSE: {
      if (stream === 0) return bad(null, 'RESPONSE on stream 0');
      // JSON has no raw 0x00 byte, so the first one ends an inline body's head.
      const nul = flags & FLAG_BODY ? payload.indexOf(0) : -1;
      if (flags & FLAG_BODY && nul < 0) return bad(stream, 'malformed RESPONSE');
      const head = parseResponseHead(parseJsonObject(nul < 0 ? payload : payload.subarray(0, nul)));
      if (!head) return bad(stream, 'malformed RESPONSE');
      const body = nul < 0 ? null : payload.subarray(nul + 1);
      return { ok: true, frame: { type: 'response', stream, head, end: (flags & FLAG_END) !== 0, body } };
    }
    case T.DATA:
      if (stream === 0) return bad(null, 'DATA on stream 0');
      return { ok: true, frame: { type: 'data', stream, payload, end: (flags & FLAG_END) !== 0 } };
    case T.MESSAGE:
      if (stream === 0) return bad(null, 'MESSAGE on stream 0');
      return { ok: true, frame: { type: 'message', stream, payload, binary: (flags & FLAG_BINARY) !== 0, fin: (flags & FLAG_FIN) !== 0 } };
    case T.CLOSE: {
      if (stream === 0) return bad(null, 'CLOSE on stream 0');
      if (payload.length === 0) return { ok: true, frame: { type: 'close', stream, code: NO_STATUS, reason: '' } };
      if (payload.length < 2) return bad(stream, 'truncated CLOSE');
      return { ok: true, frame: { type: 'close', stream, code: u16(data, V2_HEADER_BYTES), reason: decoder.decode(payload.subarray(2)) } };
    }
    case T.WINDOW_UPDATE: {
      if (payload.length !== 4) return bad(stream === 0 ? null : stream, 'WINDOW_UPDATE needs 4 bytes');
      const increment = u32(data, V2_HEADER_BYTES);
      if (increment === 0 || increment > V2_MAX_WINDOW) return bad(stream === 0 ? null : stream, 'bad WINDOW_UPDATE increment');
      return { ok: true, frame: { type: 'window', stream, increment } };
    }
    case T.RESET: {
      if (stream === 0) return bad(null, 'RESET on stream 0');
      const code = payload.length >= 2 ? u16(data, V2_HEADER_BYTES) : R.PROTOCOL_ERROR;
      const reason = payload.length > 2 ? decoder.decode(payload.subarray(2, Math.min(payload.length, 2 + 1024))) : '';
      return { ok: true, frame: { type: 'reset', stream, code, reason } };
    }
    default:
      return { ok: true, frame: { type: 'unknown', stream, frameType: type } };
  }
}

function isUint(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

function parseJsonObject(payload: Uint8Array): Record<string, unknown> | null {
  if (payload.length === 0 || payload.length > V2_MAX_PAYLOAD) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(payload));
  } catch {
    return null;
  }
  return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
}

/** Header fields from `[[name, value], …]` (or, leniently, `{name: value | [values]}`); names lowercased, non-strings skipped. */
export function parseHeaders(raw: unknown): [string, string][] {
  const out: [string, string][] = [];
  if (Array.isArray(raw)) {
    for (const pair of raw) {
      if (out.length >= V2_MAX_HEADER_FIELDS) break;
      if (Array.isArray(pair) && pair.length === 2 && typeof pair[0] === 'string' && typeof pair[1] === 'string') {
        // A parsed pair whose name is already lowercase (the usual case) is taken as it is.
        const name = pair[0].toLowerCase();
        out.push(name === pair[0] ? (pair as [string, string]) : [name, pair[1]]);
      }
    }
  } else if (typeof raw === 'object' && raw !== null) {
    for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (out.length >= V2_MAX_HEADER_FIELDS) return out;
        if (typeof v === 'string') out.push([name.toLowerCase(), v]);
      }
    }
  }
  return out;
}

function parseOpenHead(o: Record<string, unknown> | null): V2OpenHead | null {
  if (!o) return null;
  if (o.kind === 'tcp') return { kind: 'tcp' };
  if (o.kind !== 'http' && o.kind !== 'websocket') return null;
  if (typeof o.method !== 'string' || typeof o.path !== 'string') return null;
  return { kind: o.kind, method: o.method, path: o.path, headers: parseHeaders(o.headers) };
}

function parseResponseHead(o: Record<string, unknown> | null): V2ResponseHead | null {
  if (!o) return null;
  if (typeof o.status !== 'number' || !Number.isInteger(o.status)) return null;
  const headers = parseHeaders(o.headers);
  if (o.length === undefined || o.length === null) return { status: o.status, headers };
  if (typeof o.length !== 'number' || !Number.isSafeInteger(o.length) || o.length < 0) return null;
  return { status: o.status, headers, length: o.length };
}

/** Close codes a WebSocket endpoint may put in a close frame (RFC 6455 7.4). */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** A close reason that fits a WebSocket close frame (at most 123 UTF-8 bytes), else empty. */
export function sendableCloseReason(reason: string): string {
  return encoder.encode(reason).length <= MAX_CLOSE_REASON_BYTES ? reason : '';
}
