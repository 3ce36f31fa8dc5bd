import { createHash, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/** A loopback TCP server used as a relay target; `connections` holds live sockets. */
export interface TestTarget {
  readonly server: Server;
  readonly port: number;
  readonly connections: Set<Socket>;
  close(): Promise<void>;
}

/** Starts a TCP server on 127.0.0.1 (or `host`) that runs `onConnection` for each client. */
export async function startTarget(onConnection: (socket: Socket) => void, host = '127.0.0.1'): Promise<TestTarget> {
  const connections = new Set<Socket>();
  const server = createServer((socket) => {
    connections.add(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => connections.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of connections) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Echoes every byte back. */
export function echoTarget(host?: string): Promise<TestTarget> {
  return startTarget((s) => s.pipe(s), host);
}

/** Collects everything a client sends; `received(socket)` resolves with it when the client ends. */
export function sinkTarget(): Promise<TestTarget & { received: Promise<Buffer> }> {
  let resolveReceived!: (b: Buffer) => void;
  const received = new Promise<Buffer>((r) => (resolveReceived = r));
  return startTarget((s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      resolveReceived(Buffer.concat(chunks));
      s.end();
    });
  }).then((t) => Object.assign(t, { received }));
}

/** Sends `payload` to each client, then closes (FIN). */
export function sourceTarget(payload: Buffer): Promise<TestTarget> {
  return startTarget((s) => {
    s.end(payload);
  });
}

/** Sends to each client as fast as it reads, until it goes away. */
export function floodTarget(): Promise<TestTarget> {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  return startTarget((s) => {
    const pump = (): void => {
      while (!s.destroyed && s.write(chunk));
    };
    s.on('drain', pump);
    pump();
  });
}

/** Accepts connections and never reads from them. */
export function stalledTarget(): Promise<TestTarget> {
  return startTarget((s) => s.pause());
}

export function randomPayload(bytes: number): Buffer {
  return randomBytes(bytes);
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}
