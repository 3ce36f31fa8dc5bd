/** The longest close reason a WebSocket close frame holds (RFC 6455 §5.5: 125 bytes less the code). */
export const MAX_CLOSE_REASON_BYTES = 123;

const encoder = new TextEncoder();

/**
 * `reason` cut to fit a close frame, at a character boundary. `ws` throws on a
 * longer one, after the handshake has already been answered.
 */
export function fitCloseReason(reason: string): string {
  if (reason.length <= MAX_CLOSE_REASON_BYTES / 3 || encoder.encode(reason).length <= MAX_CLOSE_REASON_BYTES) return reason;
  let out = '';
  let bytes = 0;
  for (const ch of reason) {
    const n = encoder.encode(ch).length;
    if (bytes + n > MAX_CLOSE_REASON_BYTES) break;
    out += ch;
    bytes += n;
  }
  return out;
}
