import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { resetSocket } from '../../common/reset-socket.js';
import { BoundedWriter, setReadableMark } from '../../common/socket-bounds.js';
import { writeHttpRefusal } from '../../upgrade/raw-response.js';
import { CLUSTER_AUTH_CHALLENGE, CLUSTER_AUTH_HEADER, verifyClusterRequest } from '../internal-auth.js';
import { replicaEndpoint } from './internal-headers.js';

/** How long a requester's socket may take to flush what was piped to it once the owner's side closed. */
export const FLUSH_GRACE_MS = 30_000;

/**
 * An HTTP upgrade request from this replica (the entry) to the replica at
 * `ownerUrl` (its advertise URL). `headers` is a flat name/value list, as
 * Node's `rawHeaders`; Host is added. Not sent until `end()`.
 */
export function ownerUpgradeRequest(ownerUrl: string, path: string, headers: readonly string[]): ClientRequest {
  const { https, host, port, hostHeader } = replicaEndpoint(ownerUrl);
  return request({
    host,
    port,
    method: 'GET',
    path,
    headers: ['host', hostHeader, ...headers],
    createConnection: () =>
      https
        ? tlsConnect({ host, port, servername: host, allowHalfOpen: true } as ConnectionOptions)
        : connect({ host, port, allowHalfOpen: true }),
  });
}

/**
 * Pipes the requester's socket and the owner's upgraded socket both ways,
 * `head` (what the owner sent right after its response head) first. An end
 * is passed on as it came: a socket that closes after its peer's FIN, without
 * an error, ends the other once what was piped to it is written (a FIN, reset
 * after a grace if it is not taken); one that closes otherwise (a reset, an
 * error, a drop) resets the other, so that a stream cut on one side (the owner
 * reset a tunnel connection that lost bytes) does not reach the other side as
 * a FIN that would pass its prefix for the whole.
 */
export function spliceToOwner(entry: Duplex, upstream: Socket, head: Buffer): void {
  upstream.on('error', () => upstream.destroy());
  entry.on('error', () => entry.destroy());
  if (entry.destroyed) return void upstream.destroy();
  upstream.setNoDelay(true);
  if (head.length > 0) entry.write(head);
  pump(entry, upstream);
  pump(upstream, entry);
  entry.once('close', (hadError: boolean) => {
    // Closed cleanly (the requester's FIN read, and `pump` ended the owner's connection behind the last of it):
    // that connection closes by itself once what is queued for it is written, which may still wait for the
    // owner to read (reset after a grace). Otherwise (a reset, an error, a drain's cut) the cut is passed on.
    if (!hadError && entry.readableEnded && upstream.writableEnded && !upstream.destroyed) {
      const grace = setTimeout(() => resetSocket(upstream), FLUSH_GRACE_MS).unref();
      upstream.once('close', () => clearTimeout(grace));
      return;
    }
    resetSocket(upstream);
  });
  upstream.once('close', (hadError: boolean) => {
    if (hadError || !upstream.readableEnded) return void resetSocket(entry);
    // Closed already (it ended first): nothing left to flush, nor to reset.
    if (entry.destroyed) return;
    if (!entry.writableFinished) entry.end();
    const grace = setTimeout(() => resetSocket(entry), FLUSH_GRACE_MS).unref();
    entry.once('close', () => clearTimeout(grace));
  });
  entry.resume();
  upstream.resume();
}

/**
 * `from.pipe(to)`, with the bounds of a tunnel's own TCP connections (`TcpStream`): `from` is paused
 * once `to` holds 16 KiB or SOCKET_HIGH_WRITES writes (tiny segments each cost a write of ~170 heap
 * bytes: 16 KiB of 1-byte writes is ~2.8 MiB), and a paused `from` stops reading at its next read
 * instead of buffering 16 KiB of reads (one Buffer each). `from`'s end ends `to`, as `pipe` does, also an
 * end that came before the splice.
 */
function pump(from: Duplex, to: Duplex): void {
  setReadableMark(from, 0);
  const writer = new BoundedWriter(to, () => void from.resume());
  from.on('data', (chunk: Buffer) => {
    if (!writer.write(chunk)) from.pause();
  });
  // A requester's FIN read while the owner's answer was awaited (it half-closed, or left, before sending a
  // byte) has had its 'end' already: a paused socket with nothing buffered emits it at once.
  if (from.readableEnded) to.end();
  else from.once('end', () => to.end());
}

/**
 * The owner's check of an upgrade to `/_cluster/`: true when `req` carries a
 * valid `CLUSTER_SECRET` signature; otherwise the socket is answered 401 (no
 * signature) or 403 (a bad, stale or malformed one) and false is returned.
 */
export function signedUpgrade(secret: string, req: IncomingMessage, socket: Duplex): boolean {
  const auth = verifyClusterRequest(secret, req.headers[CLUSTER_AUTH_HEADER], req.method ?? '', req.url ?? '');
  if (auth === 'missing') writeHttpRefusal(socket, 401, 'cluster authentication required', CLUSTER_AUTH_CHALLENGE);
  else if (auth === 'invalid') writeHttpRefusal(socket, 403, 'cluster authentication failed');
  return auth === 'ok';
}
