import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

/**
 * Reads an HTTP response head from `socket` (in paused mode: nothing read is
 * dropped); resolves with it (latin1, without its blank line) and the bytes
 * read after it.
 */
export async function readResponseHead(socket: Socket): Promise<{ head: string; rest: Buffer }> {
  let acc = Buffer.alloc(0);
  for (;;) {
    const end = acc.indexOf('\r\n\r\n');
    if (end !== -1) return { head: acc.subarray(0, end).toString('latin1'), rest: acc.subarray(end + 4) };
    const chunk = socket.read() as Buffer | null;
    if (chunk === null) await once(socket, 'readable');
    else acc = Buffer.concat([acc, chunk]);
  }
}

/**
 * Opens a WebSocket on a bare TCP socket to 127.0.0.1:`port` (no client
 * library, so a test writes the frames, byte by byte if it likes), with
 * `headers` (one `Name: value` line each) besides the handshake's; resolves
 * with the socket after the 101, Nagle off, not flowing: what came in the
 * 101's read, and anything after, waits for the caller's first 'data'
 * listener.
 */
export async function openRawWebSocket(port: number, pathAndQuery: string, host = `127.0.0.1:${port}`, headers: readonly string[] = []): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  socket.write(
    `GET ${pathAndQuery} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
      headers.map((h) => `${h}\r\n`).join('') +
      '\r\n',
  );
  const { head, rest } = await readResponseHead(socket);
  assert.match(head, /^HTTP\/1\.1 101 /);
  if (rest.length > 0) socket.unshift(rest);
  return socket;
}
