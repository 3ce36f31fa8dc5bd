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

/**
 * The refusal for an error of Node's `clientError` event, or null when it is
 * not about the request: a connection that failed (`ECONNRESET`, `EPIPE`…).
 */
export function refusalForClientError(code: string | undefined): ListenerRefusal | null {
  // The connection ended in the middle of a request (a body cut short): the client left, it was not refused.
  if (code === undefined || code === 'HPE_INVALID_EOF_STATE') return null;
  return Object.hasOwn(PARSER_ERRORS, code) ? PARSER_ERRORS[code]! : code.startsWith('HPE_') ? 'malformed_request' : null;
}
