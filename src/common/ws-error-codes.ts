/**
 * The close codes `ws` sends when it rejects the peer's frames, by its error
 * code. Free of Node APIs: the browser-capable resumable relay client uses it
 * too (with the `ws` package its socket's 'error' event carries these).
 */

/** `ws`'s receiver error codes whose close is not a plain 1002 (protocol error). */
const CLOSE_CODES: Readonly<Record<string, number>> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 1009,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: 1009,
  WS_ERR_INVALID_UTF8: 1007,
  WS_ERR_TOO_MANY_BUFFERED_PARTS: 1008,
};

/**
 * The close code `ws` sent for an error of the peer's frames (1002, 1007,
 * 1008, 1009; 1009: a message over its `maxPayload`), or null for any other
 * error. The peer rarely answers that close, so the `close` event reports
 * 1006; the logs should say what broke.
 */
export function protocolCloseCode(err: unknown): number | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('WS_ERR_')) return null;
  return CLOSE_CODES[code] ?? 1002;
}
