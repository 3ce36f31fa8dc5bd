/**
 * Whether a response with `status` has no content, whatever its headers say: 204 No Content, 205 Reset Content
 * and 304 Not Modified (RFC 9110 §15.3.5, §15.3.6, §15.4.5; 1xx are never a final response here).
 */
export function statusHasNoContent(status: number): boolean {
  return status === 204 || status === 205 || status === 304;
}
