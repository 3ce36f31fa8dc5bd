import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

/**
 * Opens a WebSocket on a bare TCP socket to 127.0.0.1:`port` (no client
 * library, so a test writes the frames, byte by byte if it likes), with
 * `headers` (one `Name: value` line each) besides the handshake's; resolves
 * with the socket after the 101, Nagle off.
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
  let head = '';
  while (!head.includes('\r\n\r\n')) head += String((await once(socket, 'data'))[0]);
  assert.match(head, /^HTTP\/1\.1 101 /);
  return socket;
}
