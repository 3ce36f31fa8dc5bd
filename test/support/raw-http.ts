import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

/**
 * Sends one HTTP/1.1 request exactly as written (`requestLine`, then `Host`,
 * any `headers` lines, `Connection: close`) to 127.0.0.1:`port` and resolves
 * with the status and the whole response text once the server closes.
 */
export function rawRequest(port: number, requestLine: string, opts: { host?: string; headers?: string } = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () =>
      s.write(`${requestLine}\r\nHost: ${opts.host ?? '127.0.0.1'}\r\n${opts.headers ?? ''}Connection: close\r\n\r\n`),
    );
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (!m) return reject(new Error(`no status line in ${JSON.stringify(text.slice(0, 200))}`));
      resolve({ status: Number(m[1]), text });
    });
  });
}

/** Writes `head` on a new connection and resolves with everything the server sends before it closes. */
export async function rawExchange(port: number, head: string, after?: (s: Socket) => void): Promise<string> {
  const s = connect({ host: '127.0.0.1', port });
  await once(s, 'connect');
  let text = '';
  s.on('data', (c: Buffer) => (text += c.toString('latin1')));
  s.on('error', () => undefined);
  s.write(head);
  after?.(s);
  await once(s, 'close');
  return text;
}

/** The headers of a valid WebSocket handshake, after a request line and Host, for raw upgrades. */
export const UPGRADE_HEADERS = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

/**
 * Opens `count` connections to 127.0.0.1:`port` that each write `text` and reset at once, so the
 * request and the reset arrive together; resolves once all are sent.
 */
export async function writeThenReset(port: number, text: string, count: number): Promise<void> {
  await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<void>((resolve) => {
          const s = connect(port, '127.0.0.1', () => {
            s.write(text);
            s.resetAndDestroy();
            resolve();
          });
          s.on('error', () => resolve());
        }),
    ),
  );
}
