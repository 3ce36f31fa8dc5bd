/**
 * Serves the test page's static files from a loopback HTTP server. Each server
 * is its own origin (`http://127.0.0.1:<port>`): one is listed in
 * ALLOWED_ORIGINS, another is not.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
};

export interface PageServer {
  /** `http://127.0.0.1:<port>`, exactly what Chromium sends as Origin. */
  readonly origin: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Serves the files in `dir` and one level of subdirectory below it (no dots in names, so no traversal); `/` is index.html. */
export async function startPageServer(dir: string): Promise<PageServer> {
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const name = path === '/' ? 'index.html' : path.slice(1);
    const type = TYPES[extname(name)];
    if (req.method !== 'GET' || !/^(?:[\w-]+\/)?[\w-]+\.\w+$/.test(name) || !type) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    readFile(join(dir, name)).then(
      (body) => res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store', 'content-length': body.length }).end(body),
      () => res.writeHead(404, { 'content-type': 'text/plain' }).end('not found'),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
