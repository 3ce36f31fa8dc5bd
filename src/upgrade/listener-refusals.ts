/**
 * What the public listener refuses before any route sees a request (upgrades
 * included), with the status and reason the client gets. The keys are the
 * `reason` label of `wsproxy_http_refusals_total`, so slowloris clients,
 * header floods and malformed requests show in metrics, not only in replies.
 */
export const LISTENER_REFUSALS = {
  /** Node's parser could not read the request (anything but the codes below). */
  malformed_request: [400, 'malformed HTTP request'],
  head_too_large: [431, 'request head too large'],
  target_too_long: [414, 'request target too long'],
  head_timeout: [408, 'request head not received in time'],
  chunk_extensions_too_large: [413, 'chunk extensions too large'],
  connect: [405, 'CONNECT is not supported'],
  unsupported_version: [505, 'HTTP version not supported'],
  too_many_headers: [431, 'too many header fields'],
  repeated_host: [400, 'repeated Host header'],
  missing_host: [400, 'missing Host header'],
  invalid_host: [400, 'invalid Host header'],
  malformed_target: [400, 'malformed request target'],
} as const satisfies Record<string, readonly [number, string]>;

/** One of the listener's refusals (a key of `LISTENER_REFUSALS`). */
export type ListenerRefusal = keyof typeof LISTENER_REFUSALS;

/** Every `ListenerRefusal`, for metrics that expose each label from the start. */
export const LISTENER_REFUSAL_LABELS = Object.keys(LISTENER_REFUSALS) as ListenerRefusal[];

/** What Node's HTTP parser refuses, by error code (any other `HPE_` code: `malformed_request`). */
const PARSER_ERRORS: Readonly<Record<string, ListenerRefusal>> = {
  HPE_HEADER_OVERFLOW: 'head_too_large',
  ERR_HTTP_REQUEST_TIMEOUT: 'head_timeout',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 'chunk_extensions_too_large',
};

/** A request line naming a well-formed HTTP version (RFC 9112 §2.3). */
const WELL_FORMED_VERSION_LINE = /^[!-~]+ [!-~]+ HTTP\/\d\.\d$/;
/** Longer request lines are not looked at (`MAX_HEADER_BYTES` bounds them anyway). */
const MAX_LINE_EXAMINED = 16 * 1024;

/**
 * The refusal for an error of Node's `clientError` event, or null when it is
 * not about the request: a connection that failed (`ECONNRESET`, `EPIPE`…).
 * `rawPacket` and `bytesParsed` (the error's own fields: the bytes the parser
 * was given, and where it stopped) tell a version Node does not take
 * (`HTTP/1.2`, `HTTP/3.0`: 505) from a malformed one (`HTTP/1.10`: 400).
 * `firstPacket`: `rawPacket` is the first the connection carried, so it starts with a request line.
 */
export function refusalForClientError(code: string | undefined, rawPacket?: Buffer, bytesParsed?: number, firstPacket = false): ListenerRefusal | null {
  // The connection ended in the middle of a request (a body cut short): the client left, it was not refused.
  if (code === undefined || code === 'HPE_INVALID_EOF_STATE') return null;
  if (code === 'HPE_INVALID_VERSION' && rawPacket !== undefined && namesWellFormedVersion(rawPacket, bytesParsed ?? 0)) {
    return 'unsupported_version';
  }
  // RFC 9112 §3: a request-target longer than the server wishes to parse MUST be answered 414, not as a large head.
  if (code === 'HPE_HEADER_OVERFLOW' && rawPacket !== undefined && overflowsInTarget(rawPacket, bytesParsed ?? 0, firstPacket)) return 'target_too_long';
  return Object.hasOwn(PARSER_ERRORS, code) ? PARSER_ERRORS[code]! : code.startsWith('HPE_') ? 'malformed_request' : null;
}

/**
 * A request line cut off in its target: a method, one space and the start of a target (origin-form, absolute-form
 * or `*`), with no further space.
 */
const REQUEST_LINE_IN_TARGET = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ (?:\/|\*|[A-Za-z][A-Za-z0-9+.-]*:)[^ \t\r\n]*$/;

/**
 * Whether Node's head limit was reached in the request target: the line of `raw` the parser stopped in (at `at`)
 * is a request line still in its target. Node counts the target, header names and values against the same limit
 * and says only that the head overflowed; the line tells them apart. A line that began in an earlier packet (a
 * target or a header value sent in pieces) cannot be told apart from here: it keeps the 431.
 */
function overflowsInTarget(raw: Buffer, at: number, firstPacket: boolean): boolean {
  const end = Math.min(at, raw.length);
  const start = end > 0 ? raw.lastIndexOf(0x0a, end - 1) + 1 : 0;
  // A line at the start of a later packet may have begun in an earlier one: a header value sent in pieces can read
  // like a request line there (`X-Forwarded-Request: ` + `GET /…`). The parser stops a header value at its line
  // break or at the packet's end, never at a space; a target it stops at the space before the version. Unless the
  // packet is the connection's first, only a line stopped at that space is a target.
  if (start === 0 && !firstPacket && raw[end] !== 0x20) return false;
  // Only the start of the line matters: the method, a space and the target's first bytes; then no space to `end`.
  const prefix = raw.toString('latin1', start, Math.min(end, start + 64));
  if (!REQUEST_LINE_IN_TARGET.test(prefix)) return false;
  const nextSpace = raw.indexOf(0x20, raw.indexOf(0x20, start) + 1);
  return nextSpace === -1 || nextSpace >= end;
}

/** Whether the line of `raw` the parser stopped in (at `at`) is a request line with a well-formed version. */
function namesWellFormedVersion(raw: Buffer, at: number): boolean {
  const start = at > 0 ? raw.lastIndexOf(0x0a, Math.min(at, raw.length) - 1) + 1 : 0;
  const newline = raw.indexOf(0x0a, start);
  const end = Math.min(newline === -1 ? raw.length : newline, start + MAX_LINE_EXAMINED);
  const line = raw.toString('latin1', start, end);
  return WELL_FORMED_VERSION_LINE.test(line.endsWith('\r') ? line.slice(0, -1) : line);
}
