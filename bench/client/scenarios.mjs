/**
 * What the load generator does, one function per scenario. Each takes a plain
 * job object (sent over IPC by the orchestrator) and returns plain numbers.
 * Timings use the monotonic clock; nothing here knows which competitor it is
 * talking to.
 */
import { Agent, request } from 'node:http';
import { openConn } from './conn.mjs';
import { BLOCK, PatternCheck, bulkHeader, slice } from '../lib/pattern.mjs';
import { percentile } from '../lib/stats.mjs';

const MiB = 1024 * 1024;
const now = () => performance.now();

/** Writes `total` pattern bytes in `chunk`-sized messages, keeping at most `hwm` queued; calls `done` after the last write. */
function pump(conn, total, chunk, hwm, done, shouldStop = () => false) {
  let off = 0;
  const step = () => {
    while (off < total) {
      if (shouldStop()) return done(off);
      const len = Math.min(chunk, total - off, BLOCK);
      const buf = slice(off, len);
      off += len;
      if (conn.buffered + len >= (conn.highWater ?? hwm)) {
        conn.send(buf, (err) => (err ? done(off, err) : step()));
        return;
      }
      conn.send(buf);
    }
    done(off);
  };
  step();
  return () => off;
}

/**
 * Bulk transfer of `bytes` through one connection: 'down' (target → client) or
 * 'up' (client → target, which checks and answers a verdict). Every byte is
 * compared with the pattern. The clock runs from the header to the last byte
 * (down) or to the verdict (up); connection setup is not timed.
 */
export async function bulk({ endpoint, port, dir, bytes, chunk = 64 * 1024, hwm = 1 * MiB }) {
  const conn = await openConn(endpoint, port);
  const t0 = now();
  const cpu0 = process.cpuUsage();
  const result = await new Promise((resolve, reject) => {
    let closed = false;
    conn.onClose(() => {
      closed = true;
      reject(new Error(`connection closed early (${dir})`));
    });
    if (dir === 'down') {
      const check = new PatternCheck();
      conn.onData((d) => {
        check.feed(d);
        if (check.offset >= bytes) resolve({ received: check.offset, ok: check.badAt === -1 && check.offset === bytes });
      });
      conn.send(bulkHeader('D', bytes));
    } else {
      let verdict = Buffer.alloc(0);
      conn.onData((d) => {
        verdict = Buffer.concat([verdict, d]);
        if (verdict.length >= 9) resolve({ received: Number(verdict.readBigUInt64BE(1)), ok: verdict[0] === 1 });
      });
      conn.send(bulkHeader('U', bytes));
      pump(conn, bytes, chunk, hwm, (_off, err) => err && !closed && reject(err));
    }
  });
  const seconds = (now() - t0) / 1000;
  conn.close();
  if (!result.ok) throw new Error(`${dir}: data mismatch or short count (${result.received} of ${bytes} bytes)`);
  const cu = process.cpuUsage(cpu0);
  return { seconds, mibps: bytes / MiB / seconds, bytes: result.received, verified: true, clientCpuMs: (cu.user + cu.system) / 1000, clientSysMs: cu.system / 1000 };
}

/** One streamed HTTP download of `bytes` pattern bytes (GET /download with the endpoint's Host), every byte checked. */
export async function httpDownload({ endpoint, bytes }) {
  const t0 = now();
  const check = new PatternCheck();
  await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: endpoint.port, path: `/download?bytes=${bytes}`, headers: { host: endpoint.host }, agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
      res.on('data', (d) => check.feed(d));
      res.on('end', resolve);
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  const seconds = (now() - t0) / 1000;
  if (check.badAt !== -1 || check.offset !== bytes) throw new Error(`http download: data mismatch or short count (${check.offset} of ${bytes} bytes)`);
  return { seconds, mibps: bytes / MiB / seconds, bytes: check.offset, verified: true };
}

/** Ping-pong of `size`-byte messages through the echo target; latency percentiles in µs over `rounds` (after `warmup`). */
export async function echo({ endpoint, port, rounds, warmup = 500, size = 32 }) {
  const conn = await openConn(endpoint, port);
  const payload = Buffer.alloc(size, 0x61);
  const lat = new Float64Array(rounds);
  await new Promise((resolve, reject) => {
    let i = -warmup;
    let got = 0;
    let t0 = 0;
    conn.onClose(() => reject(new Error('echo connection closed')));
    conn.onData((d) => {
      got += d.length;
      if (got < size) return;
      if (got > size) return reject(new Error(`echo returned ${got} bytes for ${size}`));
      if (i >= 0) lat[i] = (now() - t0) * 1000;
      i++;
      if (i === rounds) return resolve();
      got = 0;
      t0 = now();
      conn.send(payload);
    });
    got = 0;
    t0 = now();
    conn.send(payload);
  });
  conn.close();
  return { rounds, p50us: percentile(lat, 50), p99us: percentile(lat, 99), meanUs: lat.reduce((a, b) => a + b, 0) / rounds };
}

function firstByte(endpoint, port, opts) {
  return openConn(endpoint, port, opts).then(
    (conn) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => (conn.destroy(), reject(new Error('no first byte'))), opts.timeoutMs ?? 15_000);
        conn.onClose(() => (clearTimeout(timer), reject(new Error('closed before the first byte'))));
        conn.onData(() => {
          clearTimeout(timer);
          resolve(conn);
        });
      }),
  );
}

function errorKey(err) {
  return (err instanceof Error ? err.message : String(err)).slice(0, 120);
}

/**
 * Connection setup rate: `count` connections, `inflight` at a time, each timed
 * from the start of the connect to the target's first byte (so it covers the
 * handshake, the JWT check, the dial and the first relayed byte), then closed.
 * `tokens`: one per connection, so no verification result could be reused.
 */
export async function setup({ endpoint, ports, count, inflight, tokens, maxSeconds = Infinity }) {
  let next = 0;
  let failures = 0;
  const errors = {};
  const lat = [];
  const t0 = now();
  const stopAt = t0 + maxSeconds * 1000;
  const cpu0 = process.cpuUsage();
  const lane = async () => {
    while (next < count && now() < stopAt) {
      const i = next++;
      const port = ports[i % ports.length];
      const s = now();
      try {
        const conn = await firstByte(endpoint, port, { token: tokens?.[i] });
        lat.push((now() - s) * 1000);
        conn.close();
      } catch (err) {
        failures++;
        const k = errorKey(err);
        errors[k] = (errors[k] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: inflight }, lane));
  const seconds = (now() - t0) / 1000;
  const cu = process.cpuUsage(cpu0);
  const clientCpuMs = (cu.user + cu.system) / 1000;
  return { count: next, failures, errors, seconds, perSecond: (next - failures) / seconds, p50us: percentile(lat, 50), p99us: percentile(lat, 99), clientCpuMs };
}

/** Connections held open by `hold`, released by `release`. */
let held = [];

/**
 * Opens `count` idle connections (each confirmed by the target's first byte)
 * and keeps them. Client sockets are spread over `sourceAddresses` (127.0.0.x)
 * and target ports over `ports`, so loopback 4-tuples never run out.
 */
export async function hold({ endpoint, ports, count, inflight = 100, sourceAddresses = ['127.0.0.1'] }) {
  let next = 0;
  let failures = 0;
  const errors = {};
  const t0 = now();
  const lane = async () => {
    while (next < count) {
      const i = next++;
      try {
        held.push(await firstByte(endpoint, ports[i % ports.length], { localAddress: sourceAddresses[i % sourceAddresses.length], timeoutMs: 30_000 }));
      } catch (err) {
        failures++;
        const k = errorKey(err);
        errors[k] = (errors[k] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: inflight }, lane));
  return { established: held.length, failures, errors, seconds: (now() - t0) / 1000 };
}

/** Closes every held connection and waits (bounded) for them to finish closing; counts those still open until then. */
export async function release() {
  const conns = held;
  held = [];
  const openAtRelease = conns.filter((c) => !c.closed).length;
  await Promise.race([
    Promise.all(
      conns.map(
        (c) =>
          new Promise((resolve) => {
            if (c.closed) return resolve();
            c.onClose(resolve);
            c.close();
          }),
      ),
    ),
    new Promise((r) => setTimeout(r, 20_000)),
  ]);
  for (const c of conns) c.destroy();
  return { released: conns.length, openAtRelease };
}

/**
 * Pushes up to `bytes` at the slow target as fast as the path accepts them,
 * for at most `seconds`; reports what was written over time (the client's own
 * queue stays under `hwm`, so what it wrote is what the path accepted).
 */
export async function push({ endpoint, port, bytes, seconds, hwm = 1 * MiB }) {
  const conn = await openConn(endpoint, port);
  const t0 = now();
  const deadline = t0 + seconds * 1000;
  const timeline = [];
  let written = () => 0;
  const sampler = setInterval(() => timeline.push([Math.round(now() - t0), written() - conn.buffered]), 250);
  let sent;
  try {
    // A relay that drops the connection also stops growing: that must fail the sample, not pass it.
    sent = await new Promise((resolve, reject) => {
      const stopTimer = setTimeout(() => resolve(written()), seconds * 1000);
      conn.onClose(() => {
        clearTimeout(stopTimer);
        reject(new Error(`connection closed after ${((now() - t0) / 1000).toFixed(1)} s of the push`));
      });
      written = pump(conn, bytes, 64 * 1024, hwm, (off, err) => {
        clearTimeout(stopTimer);
        if (err) reject(new Error(`push failed: ${err.message}`));
        else resolve(off);
      }, () => now() >= deadline);
    });
  } finally {
    clearInterval(sampler);
  }
  const accepted = sent - conn.buffered;
  conn.destroy();
  return { seconds: (now() - t0) / 1000, accepted, finished: sent >= bytes, timeline };
}

/**
 * HTTP load: `inflight` keep-alive connections each issuing GETs back to back
 * for `warmup + seconds`; requests completing in the measured window count.
 */
export async function httpLoad({ endpoint, inflight, seconds, warmup = 0.5, path = '/' }) {
  const agent = new Agent({ keepAlive: true, maxSockets: inflight, maxFreeSockets: inflight });
  const t0 = now();
  const measureFrom = t0 + warmup * 1000;
  const end = measureFrom + seconds * 1000;
  const lat = [];
  let errors = 0;
  const statusErrors = {};
  const one = () =>
    new Promise((resolve) => {
      const s = now();
      const req = request({ host: '127.0.0.1', port: endpoint.port, path, headers: { host: endpoint.host }, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          const e = now();
          if (res.statusCode !== 200) {
            errors++;
            statusErrors[res.statusCode] = (statusErrors[res.statusCode] ?? 0) + 1;
          } else if (s >= measureFrom && e <= end) lat.push((e - s) * 1000);
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end();
    });
  const lane = async () => {
    while (now() < end) await one();
  };
  await Promise.all(Array.from({ length: inflight }, lane));
  agent.destroy();
  return {
    requests: lat.length,
    errors,
    statusErrors,
    perSecond: lat.length / seconds,
    p50ms: percentile(lat, 50) / 1000,
    p99ms: percentile(lat, 99) / 1000,
  };
}
