import type { HeaderList } from '../core/stream-types.js';

/** At most this many header fields are taken from a client's response. */
export const MAX_RESPONSE_HEADERS = 100;
/** A response header field (name + value) longer than this is dropped. */
export const MAX_RESPONSE_HEADER_BYTES = 8 * 1024;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What Node writes as a header value: no CR, LF, NUL or other control characters, nothing beyond Latin-1. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

/** Never sent towards the tunnel client: credentials of the tunnel domain, hop-by-hop, and forwarding headers we set ourselves. */
const REQUEST_DROP = new Set([
  ...HOP_BY_HOP,
  'cookie',
  'authorization',
  'proxy-authorization',
  // The proxy has answered `100-continue` itself; the whole body follows.
  'expect',
  'http2-settings',
  'forwarded',
  'x-real-ip',
]);

/** Never passed from the client's response to the requester. */
const RESPONSE_DROP = new Set([
  ...HOP_BY_HOP,
  'proxy-authenticate',
  'proxy-authorization',
  'content-length',
  'set-cookie',
  'set-cookie2',
  'strict-transport-security',
  'content-security-policy',
  'content-security-policy-report-only',
  'x-frame-options',
]);

export interface ForwardingInfo {
  /** The requester's IP as the proxy decided it (trusted proxies honoured). */
  readonly clientIp: string;
  /** `TUNNEL_PUBLIC_SCHEME`. */
  readonly proto: string;
  /** The Host the requester asked for. */
  readonly host: string;
}

/**
 * Fields a `Connection` header cannot remove: the message's routing and body
 * framing are meant for every recipient (RFC 9110 §7.6.1). Without its
 * Content-Length, a body would reach the client unframed, and a local
 * service could read it as a second request.
 */
const END_TO_END = new Set(['host', 'content-length']);

/** Header names listed in Connection headers: hop-by-hop for this message. */
function connectionTokens(pairs: Iterable<readonly [string, string]>): Set<string> {
  const out = new Set<string>();
  for (const [name, value] of pairs) {
    if (name !== 'connection') continue;
    for (const t of value.split(',')) {
      const token = t.trim().toLowerCase();
      if (token) out.add(token);
    }
  }
  return out;
}

/**
 * The request headers the tunnel client gets: Node's `rawHeaders` in order,
 * names lowercased, without credentials, hop-by-hop, client-supplied
 * forwarding headers and the proxy's own `x-wsproxy-*`, plus
 * `X-Forwarded-For/-Proto/-Host` set by the proxy.
 */
export function requestHeadersForClient(rawHeaders: readonly string[], fwd: ForwardingInfo): HeaderList {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) pairs.push([rawHeaders[i].toLowerCase(), rawHeaders[i + 1]]);
  const listed = connectionTokens(pairs);
  // `x-wsproxy-*` is the proxy's own namespace (replica-to-replica headers): never a requester's to send on.
  const out = pairs.filter(
    ([name]) => !REQUEST_DROP.has(name) && !(listed.has(name) && !END_TO_END.has(name)) && !name.startsWith('x-forwarded-') && !name.startsWith('x-wsproxy-'),
  );
  out.push(['x-forwarded-for', fwd.clientIp], ['x-forwarded-proto', fwd.proto], ['x-forwarded-host', fwd.host]);
  return out;
}

/**
 * The response headers the requester gets from a client's response: valid
 * token names and field values only, without hop-by-hop, `Content-Length`
 * (recomputed), cookies, CORS, HSTS, CSP and framing headers; at most
 * MAX_RESPONSE_HEADERS fields of at most MAX_RESPONSE_HEADER_BYTES each.
 */
export function responseHeadersForRequester(headers: HeaderList): HeaderList {
  const listed = connectionTokens(headers.map(([n, v]) => [n.toLowerCase(), v] as const));
  const out: [string, string][] = [];
  for (const [rawName, value] of headers) {
    if (out.length >= MAX_RESPONSE_HEADERS) break;
    if (!TOKEN.test(rawName) || !FIELD_VALUE.test(value)) continue;
    if (rawName.length + value.length > MAX_RESPONSE_HEADER_BYTES) continue;
    const name = rawName.toLowerCase();
    if (RESPONSE_DROP.has(name) || listed.has(name) || name.startsWith('access-control-')) continue;
    out.push([name, value]);
  }
  return out;
}

/**
 * Whether a client's status can be a final response: 100–599 is the accepted
 * range, and 1xx cannot end an HTTP/1.1 exchange (the requester would wait for
 * a final status that never comes), so only 200–599 are forwarded.
 */
export function isForwardableStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 200 && status <= 599;
}
