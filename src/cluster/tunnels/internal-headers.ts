/**
 * Headers of tunnel traffic forwarded between replicas (besides the signature,
 * `X-Wsproxy-Cluster-Auth`). They are trusted only on a signed request to
 * `/_cluster/`, and never passed on to a tunnel client.
 */
export const FORWARDED_HOST_HEADER = 'x-wsproxy-tunnel-host';
export const FORWARDED_CLIENT_IP_HEADER = 'x-wsproxy-client-ip';

/** The internal path of HTTP for `subdomain`; the requester's path and query travel (signed) in `path`. */
export function internalHttpPath(subdomain: string, path: string): string {
  return `/_cluster/tunnels/${subdomain}/http?path=${encodeURIComponent(path)}`;
}

/** The internal path of a WebSocket upgrade for `subdomain` (an HTTP upgrade); the requester's path and query travel (signed) in `path`. */
export function internalWebSocketPath(subdomain: string, path: string): string {
  return `/_cluster/tunnels/${subdomain}/ws?path=${encodeURIComponent(path)}`;
}

/** The internal path of a raw TCP connection into `subdomain`'s tunnel (an HTTP upgrade). */
export function internalTcpPath(subdomain: string): string {
  return `/_cluster/tunnels/${subdomain}/tcp`;
}

/** The `Upgrade` token of a raw TCP connection piped between replicas. */
export const TCP_UPGRADE_PROTOCOL = 'wsproxy-tcp';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'expect']);

/** `rawHeaders` without hop-by-hop fields (and those the Connection header lists), Host, Expect and the internal headers. */
export function endToEndHeaders(rawHeaders: readonly string[]): string[] {
  const listed = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i].toLowerCase() !== 'connection') continue;
    for (const t of rawHeaders[i + 1].split(',')) listed.add(t.trim().toLowerCase());
  }
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (HOP_BY_HOP.has(name) || listed.has(name) || name.startsWith('x-wsproxy-')) continue;
    out.push(rawHeaders[i], rawHeaders[i + 1]);
  }
  return out;
}
