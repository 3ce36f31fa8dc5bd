/**
 * The channel between replicas for tunnel HTTP: the entry replica (where a
 * request for another replica's tunnel arrives) keeps one WebSocket to each
 * owner at `MUX_PATH`, signed with `CLUSTER_SECRET`, and speaks tunnel
 * protocol v2 on it as a proxy speaks it to a tunnel client: each request is
 * a stream (head, body, response, credit per stream). The owner answers each
 * stream from its local tunnel. One connection carries every request, so the
 * many small requests of a busy tunnel share writes instead of costing each
 * one an HTTP request and response between the replicas.
 */
export const MUX_PATH = '/_cluster/mux';

/** First header of a stream's head: the subdomain whose tunnel serves it (a pseudo-header: never a valid HTTP name, never passed on). */
export const MUX_SUBDOMAIN_HEADER = ':subdomain';

/**
 * In a response head from the owner: the owner answered the request itself
 * (no tunnel, a timeout…) with this reason; the entry replica answers the
 * same status and plain-text reason, exactly as the owner would have.
 */
export const MUX_PLAIN_HEADER = ':plain';

/**
 * The channel's keepalive, the same on both sides: the entry pings every
 * heartbeat (no more often than once a second); either side drops a channel silent (no
 * frame, no ping or pong) for three of them.
 */
export function channelKeepalive(heartbeatMs: number): { readonly pingEveryMs: number; readonly silentAfterMs: number } {
  const beat = Math.max(1000, heartbeatMs);
  return { pingEveryMs: beat, silentAfterMs: 3 * beat };
}
