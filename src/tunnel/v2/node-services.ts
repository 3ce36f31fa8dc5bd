import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { WebSocket } from 'ws';
import { hostPort } from '../../common/host-port.js';
import { resetSocket } from '../../common/reset-socket.js';
import { statusHasNoContent } from '../../common/response-body.js';
import { R, isSendableCloseCode, sendableCloseReason, type V2Headers } from '../protocol/v2.js';
import type { V2ClientStream, V2ForwardedRequest, V2LocalServices } from './client-session.js';

/** A local service: host and port. */
export interface LocalEndpoint {
  readonly host: string;
  readonly port: number;
}

/** Bytes queued towards an origin WebSocket before the tunnel stream is paused. */
const ORIGIN_WS_HIGH_WATER = 256 * 1024;
const TEXT = [['content-type', 'text/plain; charset=utf-8']] as const;
const encoder = new TextEncoder();

/** Handshake headers the client's own handshake to the origin sets itself. */
const WS_OWN_HEADERS = new Set(['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'connection', 'upgrade']);

/**
 * The reference client's local side for protocol v2, on Node: http streams go
 * to a local HTTP service (bodies streamed both ways), websocket streams to the
 * same service's WebSocket endpoints, tcp streams to a local TCP service; all
 * with backpressure through the streams' credit.
 */
export function nodeLocalServices(http: LocalEndpoint | null, tcp: LocalEndpoint | null): V2LocalServices {
  return {
    http: (stream) => (http ? forwardHttp(http, stream) : answer(stream, 502, 'no local HTTP service')),
    websocket: (stream) => (http ? forwardWebSocket(http, stream) : answer(stream, 502, 'no local HTTP service')),
    tcp: (stream) => (tcp ? forwardTcp(tcp, stream) : stream.reset('no local TCP service', R.REFUSED)),
  };
}

function answer(stream: V2ClientStream, status: number, text: string): void {
  const body = encoder.encode(text + '\n');
  stream.respond(status, TEXT, { length: body.length, body, end: true });
}

/** Header pairs as Node's outgoing headers (a repeated name becomes an array: one line each). */
function toNodeHeaders(headers: V2Headers, skip?: Set<string>): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of headers) {
    if (skip?.has(name)) continue;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else out[name] = Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

/** Methods that Node sends without a body length when they have no body; any other bodyless request gets `content-length: 0`. */
const LENGTHLESS_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

/**
 * The request head as the flat `[name, value, …]` list `http.request` takes as
 * is: in order, a repeated name once per value, each still validated by Node;
 * no headers object is built and no `setHeader` runs per field. Given a list,
 * Node adds no `Host` and decides on chunked encoding before the body is
 * known, so those two are settled here: a missing `Host` names the local
 * service, a bodyless POST (say) says `content-length: 0` instead of
 * going out chunked, and a body without a length goes out chunked.
 */
function requestHeaders(target: LocalEndpoint, head: V2ForwardedRequest): string[] {
  const out: string[] = [];
  let host = false;
  let length = false;
  for (const [name, value] of head.headers) {
    out.push(name, value);
    if (name === 'host') host = true;
    else if (name === 'content-length') length = true;
  }
  if (!host) out.push('host', hostPort(target.host, target.port));
  if (head.bodyless) {
    if (!length && !LENGTHLESS_METHODS.has(head.method.toUpperCase())) out.push('content-length', '0');
  } else if (!length) {
    // A body of unknown length (the requester's was chunked; the proxy decoded it) goes out chunked
    // whatever the method: Node sends a GET's body unframed, and the service would read it as another request.
    out.push('transfer-encoding', 'chunked');
  }
  return out;
}

/** A response head as the tunnel carries it: pairs in order (names lowercase) and the declared body length. */
interface LocalResponseHead {
  readonly headers: [string, string][];
  /** Set when the body is delimited by Content-Length alone. */
  readonly length: number | undefined;
}

/** Reads a response head from `rawHeaders` in one pass, without materializing `res.headers`. */
function responseHead(res: IncomingMessage): LocalResponseHead {
  const raw = res.rawHeaders;
  const headers: [string, string][] = [];
  let contentLength: string | undefined;
  let chunked = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    headers.push([name, value]);
    if (name === 'content-length') contentLength ??= value;
    else if (name === 'transfer-encoding') chunked = true;
  }
  const length = !chunked && contentLength !== undefined && /^\d{1,15}$/.test(contentLength) ? Number(contentLength) : undefined;
  return { headers, length };
}

/**
 * Streams a local response into the tunnel stream, with credit. The head and
 * each chunk wait one turn of the event loop (no longer), so a response that
 * is complete at once goes out as one frame (head, body and END), and a body
 * that is complete at once carries END in its last frame.
 */
function pipeResponse(res: IncomingMessage, stream: V2ClientStream, status: number, headers: V2Headers, length: number | undefined): void {
  let headSent = false;
  let held: Buffer | null = null;
  const send = (chunk: Buffer | null, end: boolean): boolean => {
    if (!headSent) {
      headSent = true;
      return stream.respond(status, headers, { length, end, body: chunk ?? undefined });
    }
    if (end) {
      stream.end(chunk ?? undefined);
      return true;
    }
    return chunk ? stream.write(chunk) : true;
  };
  const resume = (): void => void res.resume();
  const flush = (): void => {
    timer = null;
    const chunk = held;
    held = null;
    if (send(chunk, false)) return;
    res.pause();
    // Set only when needed: a handler on the stream that reaches the response's
    // objects made the agent's garbage collection measurably costlier.
    stream.onwritable = resume;
  };
  // The head goes within one turn even when the body is slow to start (SSE, long polls).
  let timer: NodeJS.Immediate | null = setImmediate(flush);
  res.on('data', (chunk: Buffer) => {
    if (held) {
      if (timer) clearImmediate(timer);
      flush();
    }
    held = chunk;
    timer ??= setImmediate(flush);
  });
  res.on('end', () => {
    if (timer) clearImmediate(timer);
    timer = null;
    const last = held;
    held = null;
    send(last, true);
  });
  res.on('error', () => {
    if (timer) clearImmediate(timer);
    timer = null;
    stream.reset('local response failed', R.INTERNAL_ERROR);
  });
}

/** The answer to a local service's 101 to a plain request. */
export const SWITCHED_UNASKED = 'local service switched protocols unasked';

function forwardHttp(target: LocalEndpoint, stream: V2ClientStream): void {
  const head = stream.request!;
  let responded = false;
  const req = httpRequest({ host: target.host, port: target.port, method: head.method, path: head.path, headers: requestHeaders(target, head) });
  stream.onreset = () => req.destroy();
  // A bodyless request (a GET) ends at once; the stream then holds no handler
  // that reaches the request's objects while the exchange runs.
  if (head.bodyless) req.end();
  else {
    stream.ondata = (chunk) => {
      if (!req.write(chunk)) stream.pause();
    };
    req.on('drain', () => stream.resume());
    stream.onend = () => req.end();
  }
  req.on('response', (res) => {
    responded = true;
    const local = responseHead(res);
    const bodyless = head.method === 'HEAD' || statusHasNoContent(res.statusCode ?? 0);
    pipeResponse(res, stream, res.statusCode ?? 502, local.headers, bodyless ? undefined : local.length);
  });
  req.on('error', () => {
    if (!responded) answer(stream, 502, 'local service unreachable');
    else stream.reset('local service failed', R.INTERNAL_ERROR);
  });
  // A 101 to a request that asked for no upgrade: without this listener Node drops the connection
  // and reports neither a response nor an error, and the requester waited for the proxy's timeout.
  req.on('upgrade', (_res, socket) => {
    socket.destroy();
    if (responded) return;
    responded = true;
    answer(stream, 502, SWITCHED_UNASKED);
  });
}

/**
 * The local service's URL for a WebSocket stream, or null when the proxy's
 * path is not an origin-form path on it: the path is pasted after the
 * authority, so `@other-host/` would turn the configured host into a user name
 * and connect elsewhere.
 */
export function localWebSocketUrl(target: LocalEndpoint, path: string): URL | null {
  if (!path.startsWith('/') || path.startsWith('//')) return null;
  const authority = hostPort(target.host, target.port);
  let url: URL;
  try {
    url = new URL(`ws://${authority}${path}`);
  } catch {
    return null;
  }
  return url.host === new URL(`ws://${authority}`).host && url.username === '' && url.password === '' ? url : null;
}

function forwardWebSocket(target: LocalEndpoint, stream: V2ClientStream): void {
  const head = stream.request!;
  const offered = head.headers
    .filter(([name]) => name === 'sec-websocket-protocol')
    .flatMap(([, v]) => v.split(','))
    .map((p) => p.trim())
    .filter(Boolean);
  const url = localWebSocketUrl(target, head.path);
  if (url === null) return answer(stream, 400, 'invalid request target');
  const origin = new WebSocket(url, offered, {
    headers: toNodeHeaders(head.headers, WS_OWN_HEADERS) as Record<string, string>,
    perMessageDeflate: false,
    followRedirects: false,
  });
  let upgradeHeaders: [string, string][] = [];
  let answered = false;
  let drainWaiting = false;

  origin.on('upgrade', (res) => {
    upgradeHeaders = responseHead(res).headers.filter(([name]) => !['connection', 'upgrade', 'sec-websocket-accept', 'sec-websocket-extensions'].includes(name));
  });
  origin.on('open', () => {
    answered = true;
    stream.respond(101, upgradeHeaders);
  });
  origin.on('unexpected-response', (req, res) => {
    answered = true;
    const status = res.statusCode ?? 502;
    if (status >= 200 && status < 300) {
      // The service ignored the Upgrade and answered as plain HTTP: it has no WebSocket here.
      res.resume();
      req.destroy();
      answer(stream, 501, 'the local service did not accept the WebSocket upgrade');
      return;
    }
    const local = responseHead(res);
    pipeResponse(res, stream, status, local.headers, local.length);
    res.on('end', () => req.destroy());
  });
  origin.on('error', () => {
    if (!answered) {
      answered = true;
      answer(stream, 502, 'local WebSocket service unreachable');
    }
  });
  origin.on('message', (data: Buffer, isBinary: boolean) => {
    if (!stream.sendMessage(data, isBinary)) origin.pause();
  });
  origin.on('close', (code: number, reason: Buffer) => {
    if (answered && stream.live) stream.close(code, reason.toString());
  });
  stream.onwritable = () => origin.resume();
  const drained = (): void => {
    if (drainWaiting && origin.bufferedAmount < ORIGIN_WS_HIGH_WATER) {
      drainWaiting = false;
      stream.resume();
    }
  };
  stream.onmessage = (chunk, binary, fin) => {
    if (origin.readyState !== WebSocket.OPEN) return;
    origin.send(chunk, { binary, fin }, drained);
    if (!drainWaiting && origin.bufferedAmount >= ORIGIN_WS_HIGH_WATER) {
      drainWaiting = true;
      stream.pause();
    }
  };
  stream.onclose = (code, reason) => {
    if (isSendableCloseCode(code)) origin.close(code, sendableCloseReason(reason));
    else if (code === 1005) origin.close();
    else origin.terminate();
  };
  stream.onreset = () => origin.terminate();
}

function forwardTcp(target: LocalEndpoint, stream: V2ClientStream): void {
  const socket = connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
  let ended = false;
  stream.ondata = (chunk) => {
    if (!socket.write(chunk)) stream.pause();
  };
  socket.on('drain', () => stream.resume());
  stream.onend = () => socket.end();
  // Aborted (the requester's connection failed, the tunnel closed): the service must not take what it got for the
  // whole upload, as a FIN would tell it. A reset.
  stream.onreset = () => resetSocket(socket);
  stream.onwritable = () => socket.resume();
  socket.on('data', (chunk: Buffer) => {
    if (!stream.write(chunk)) socket.pause();
  });
  socket.on('end', () => {
    ended = true;
    stream.end();
  });
  socket.on('error', () => socket.destroy());
  socket.on('close', (hadError: boolean) => {
    // Closed without a clean FIN from the service (refused, reset, destroyed): the stream is aborted.
    if (hadError || !ended) stream.reset('local connection closed', R.CANCEL);
  });
}
