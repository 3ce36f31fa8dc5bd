/**
 * The loopback targets every competitor relays to, in a process of their own:
 *
 * - bulk:   reads a 9-byte header; 'D' n → sends n pattern bytes; 'U' n →
 *           receives n bytes, checks each against the pattern, answers a verdict;
 * - echo:   echoes everything (noDelay);
 * - banner: writes one byte on accept, like an SSH server's banner, then holds
 *           the connection idle (several ports, to spread loopback 4-tuples);
 * - slow:   reads at READ_RATE bytes/s, counting (backpressure figure);
 * - http:   a small HTTP/1.1 keep-alive service (tunnel figures); GET
 *           /download?bytes=n streams n pattern bytes (chunked, no length).
 *
 * Controlled over IPC (`ports`, `slowStats`).
 */
import { createServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { BLOCK, PatternCheck, slice, uploadVerdict } from '../lib/pattern.mjs';
import { serveIpc } from '../lib/proc.mjs';

const BANNER_PORTS = Number(process.env.BENCH_BANNER_PORTS ?? 16);
const READ_RATE = 1024 * 1024;
const SEND_CHUNK = 256 * 1024;

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve(server.address().port));
  });
}

function onSocket(fn) {
  return createServer({ noDelay: true }, (s) => {
    s.on('error', () => s.destroy());
    fn(s);
  });
}

const bulk = onSocket((s) => {
  let header = Buffer.alloc(0);
  const onHeader = (chunk) => {
    header = Buffer.concat([header, chunk]);
    if (header.length < 9) return;
    s.off('data', onHeader);
    const dir = String.fromCharCode(header[0]);
    const n = Number(header.readBigUInt64BE(1));
    const rest = header.subarray(9);
    if (dir === 'D') sendBulk(s, n);
    else if (dir === 'U') receiveBulk(s, n, rest);
    else s.destroy();
  };
  s.on('data', onHeader);
});

function sendBulk(s, n) {
  let off = 0;
  const pump = () => {
    while (off < n) {
      const len = Math.min(SEND_CHUNK, n - off, BLOCK);
      const ok = s.write(slice(off, len));
      off += len;
      if (!ok) return void s.once('drain', pump);
    }
  };
  s.on('end', () => s.end());
  pump();
}

function receiveBulk(s, n, first) {
  const check = new PatternCheck();
  const take = (chunk) => {
    check.feed(chunk);
    if (check.offset >= n) {
      s.off('data', take);
      s.write(uploadVerdict(check.badAt === -1 && check.offset === n, check.offset));
    }
  };
  s.on('data', take);
  s.on('end', () => s.end());
  if (first.length > 0) take(first);
}

const echo = onSocket((s) => {
  s.on('data', (d) => s.write(d));
  s.on('end', () => s.end());
});

const BANNER = Buffer.from('S');
const banners = Array.from({ length: BANNER_PORTS }, () =>
  onSocket((s) => {
    s.write(BANNER);
    s.on('end', () => s.end());
    s.resume();
  }),
);

let slowReceived = 0;
const slow = onSocket((s) => {
  // Token bucket refilled every 50 ms; a chunk read past the budget is debt
  // paid by later refills, so the average is READ_RATE however big the chunks.
  let budget = 0;
  const refill = setInterval(() => {
    budget = Math.min(budget + READ_RATE / 20, READ_RATE / 20);
    if (budget > 0 && s.isPaused()) s.resume();
  }, 50);
  s.on('data', (d) => {
    slowReceived += d.length;
    budget -= d.length;
    if (budget <= 0) s.pause();
  });
  s.on('close', () => clearInterval(refill));
  s.on('end', () => s.end());
  s.pause();
});

const HTTP_BODY = Buffer.from('{"ok":true,"service":"bench","note":"a small GET answer"}\n');
const http = createHttpServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  req.resume();
  if (req.url?.startsWith('/download?bytes=')) return sendHttpBulk(res, Number(req.url.slice('/download?bytes='.length)));
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': HTTP_BODY.length });
  res.end(HTTP_BODY);
});

/** A streamed HTTP body of n pattern bytes, written as fast as the reader takes it. */
function sendHttpBulk(res, n) {
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  let off = 0;
  const pump = () => {
    while (off < n) {
      const len = Math.min(SEND_CHUNK, n - off, BLOCK);
      const ok = res.write(slice(off, len));
      off += len;
      if (!ok) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
}
http.maxHeadersCount = 200;

const ports = {
  bulk: await listen(bulk),
  echo: await listen(echo),
  banner: await Promise.all(banners.map(listen)),
  slow: await listen(slow),
  http: await new Promise((resolve) => http.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve(http.address().port))),
};

serveIpc({
  ports: () => ports,
  slowStats: () => ({ received: slowReceived }),
});
