import { connect, type Socket } from 'node:net';

/** Connects a TCP client to `host:port` (loopback by default). */
export function dial(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Reads from `s` until `bytes` bytes arrived; rejects if it closes first. */
export function readBytes(s: Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (c: Buffer): void => {
      chunks.push(c);
      total += c.length;
      if (total >= bytes) {
        s.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    s.on('data', onData);
    s.once('close', () => {
      if (total < bytes) reject(new Error(`closed after ${total} of ${bytes} bytes`));
    });
  });
}
