import type { IncomingMessage } from 'node:http';
import { SUBDOMAIN_RE } from '../../tunnel/state/subdomain.js';
import { CLUSTER_AUTH_HEADER, signClusterRequest } from '../internal-auth.js';

/**
 * Headers of tunnel traffic forwarded between replicas (besides the signature,
 * `X-Wsproxy-Cluster-Auth`). They are trusted only on a signed request to
 * `/_cluster/`, and never passed on to a tunnel client.
 */
export const FORWARDED_HOST_HEADER = 'x-wsproxy-tunnel-host';
export const FORWARDED_CLIENT_IP_HEADER = 'x-wsproxy-client-ip';

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

/** Where another replica listens, from its advertise URL. */
export interface ReplicaEndpoint {
  readonly https: boolean;
  /** Hostname to connect to (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** The Host header for it. */
  readonly hostHeader: string;
}

export function replicaEndpoint(advertiseUrl: string): ReplicaEndpoint {
  const u = new URL(advertiseUrl);
  const https = u.protocol === 'https:';
  return { https, host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || (https ? 443 : 80)), hostHeader: u.host };
}

/**
 * The headers (a flat name/value list, as `rawHeaders`) of a requester's
 * request forwarded to the owner at `path`: its end-to-end headers, the Host
 * and IP the entry replica saw, and the signature of `method` and `path`.
 */
export function forwardedHeaders(req: IncomingMessage, clientIp: string, secret: string, method: string, path: string): string[] {
  return [
    ...endToEndHeaders(req.rawHeaders),
    FORWARDED_HOST_HEADER,
    req.headers.host ?? '',
    FORWARDED_CLIENT_IP_HEADER,
    clientIp,
    CLUSTER_AUTH_HEADER,
    signClusterRequest(secret, method, path),
  ];
}

/** A forwarded request as the owner serves it: the requester's path, Host, headers and IP. */
export interface ForwardedRequest {
  readonly path: string;
  readonly host: string;
  readonly clientIp: string;
  /** The requester's end-to-end headers, its Host first. */
  readonly rawHeaders: string[];
}

/**
 * The owner's reading of a signed forwarded request for `subdomain` with the
 * requester's path in `query`; null when anything is missing or malformed (400).
 */
export function readForwarded(req: IncomingMessage, subdomain: string, query: URLSearchParams): ForwardedRequest | null {
  const path = query.get('path') ?? '';
  const host = req.headers[FORWARDED_HOST_HEADER];
  const clientIp = req.headers[FORWARDED_CLIENT_IP_HEADER];
  if (!SUBDOMAIN_RE.test(subdomain) || !path.startsWith('/') || typeof host !== 'string' || typeof clientIp !== 'string') return null;
  return { path, host, clientIp, rawHeaders: ['host', host, ...endToEndHeaders(req.rawHeaders)] };
}
