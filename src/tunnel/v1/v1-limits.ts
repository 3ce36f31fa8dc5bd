/**
 * The largest request body v1 carries, whatever `TUNNEL_MAX_BODY_BYTES` says:
 * v1 puts a body, base64-encoded, in one JSON string, and V8 strings end near
 * 512 MiB. 256 MiB of body is 342 MiB of base64.
 */
export const V1_MAX_BODY_BYTES = 256 * 1024 * 1024;

/**
 * The largest local response body the reference v1 client forwards by default
 * (it answers 502 itself beyond). The proxy takes v1 messages that large
 * whatever `TUNNEL_MAX_BODY_BYTES` says: that variable bounds request bodies,
 * and a smaller one closed the whole tunnel (1009) on one visitor's larger response.
 */
export const V1_CLIENT_MAX_RESPONSE_BODY = 10 * 1024 * 1024;

/** The largest request body a v1 tunnel takes with `TUNNEL_MAX_BODY_BYTES` set to `maxBodyBytes`. */
export function v1MaxBodyBytes(maxBodyBytes: number): number {
  return Math.min(maxBodyBytes, V1_MAX_BODY_BYTES);
}

/** The largest message a v1 tunnel client may send: a whole `http_response` of `maxBodyBytes`, base64, plus room for the rest. */
export function v1MaxMessageBytes(maxBodyBytes: number): number {
  return Math.ceil(v1MaxBodyBytes(maxBodyBytes) / 3) * 4 + 1024 * 1024;
}
