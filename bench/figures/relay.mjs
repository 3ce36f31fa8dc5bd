/**
 * The relay figures of issue 5: throughput, echo round trip, setup rate,
 * memory per idle relay, backpressure. Each is a figure definition (see
 * figures/index.mjs for the shape).
 */
import { sleep } from '../lib/proc.mjs';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Proxy CPU used while `fn` runs, ms (NaN when the competitor has no process). */
async function withCpu(handle, fn) {
  const c0 = handle.cpuMs();
  const s0 = handle.sysMs?.() ?? NaN;
  const f0 = handle.minorFaults?.() ?? NaN;
  const r = await fn();
  return { r, cpuMs: handle.cpuMs() - c0, sysMs: (handle.sysMs?.() ?? NaN) - s0, faults: (handle.minorFaults?.() ?? NaN) - f0 };
}

/** One bulk transfer each way; shared by every throughput-shaped figure (relay, tunnel, resumption…). */
export async function bulkBothWays(ctx, handle, { bytes, dirs = 'both' }) {
  const port = handle.endpoint.port ?? ctx.targets.bulk;
  const run = (dir) => withCpu(handle, () => ctx.worker.call({ type: 'bulk', endpoint: handle.endpoint, port, dir, bytes }));
  const none = { r: { mibps: NaN, bytes: 0 }, cpuMs: NaN, sysMs: NaN, faults: NaN };
  const down = dirs === 'up' ? none : await run('down');
  const up = dirs === 'down' ? none : await run('up');
  return {
    download: down.r.mibps,
    upload: up.r.mibps,
    extra: {
      verifiedBytes: down.r.bytes + up.r.bytes,
      proxyCpuMsPerGiB: { download: (down.cpuMs * GiB) / bytes, upload: (up.cpuMs * GiB) / bytes },
      clientCpuMsPerGiB: { download: (down.r.clientCpuMs * GiB) / bytes, upload: (up.r.clientCpuMs * GiB) / bytes },
      clientSysMsPerGiB: { download: (down.r.clientSysMs * GiB) / bytes, upload: (up.r.clientSysMs * GiB) / bytes },
      proxySysMsPerGiB: { download: (down.sysMs * GiB) / bytes, upload: (up.sysMs * GiB) / bytes },
      proxyMinorFaultsPerGiB: { download: (down.faults * GiB) / bytes, upload: (up.faults * GiB) / bytes },
    },
  };
}

export const throughput = {
  id: 'throughput',
  title: 'Bulk throughput through one relay',
  method:
    'One connection per sample; the target sends (download) or receives (upload) the byte count, 64 KiB client messages; every byte compared with the pattern; clock from request to last byte (download) or to the target’s verdict (upload).',
  competitors: ['wsproxy', 'plain', 'websockify', 'direct'],
  diagnostic: ['pipe-only', 'wsproxy-malloc'],
  baseline: 'plain',
  subject: 'wsproxy',
  params: ({ quick }) => ({ bytes: (quick ? 32 : 256) * MiB }),
  describe: (p) => `${p.bytes / MiB} MiB each way`,
  metrics: [
    { id: 'download', label: 'download', unit: 'MiB/s', better: 'higher', targets: [{ vs: 'plain', op: '>=', value: 1.0 }] },
    {
      id: 'upload',
      label: 'upload',
      unit: 'MiB/s',
      better: 'higher',
      targets: [
        { vs: 'plain', op: '>=', value: 1.0 },
        { vs: 'websockify', op: '>=', value: 1.5 },
      ],
    },
  ],
  // A whole unrecorded transfer each way: the first one pays heap growth (page faults) and JIT.
  warmup: bulkBothWays,
  sample: bulkBothWays,
};

export const echo = {
  id: 'echo',
  title: 'Echo round trip, keystroke-sized messages',
  method: 'One connection; a 32-byte message to the echo target and back, one at a time; 500 warm-up rounds not counted.',
  competitors: ['wsproxy', 'plain', 'websockify', 'direct'],
  diagnostic: ['pipe-only'],
  baseline: 'plain',
  subject: 'wsproxy',
  params: ({ quick }) => ({ rounds: quick ? 1000 : 5000, size: 32 }),
  describe: (p) => `${p.rounds} rounds of ${p.size} B`,
  metrics: [
    { id: 'p50', label: 'round trip p50', unit: 'µs', better: 'lower', targets: [{ vs: 'plain', op: '<=', value: 1.1 }] },
    { id: 'p99', label: 'round trip p99', unit: 'µs', better: 'lower', targets: [{ vs: 'plain', op: '<=', value: 1.25 }] },
  ],
  async sample(ctx, handle, { rounds, size }) {
    const r = await ctx.worker.call({ type: 'echo', endpoint: handle.endpoint, port: ctx.targets.echo, rounds, size });
    return { p50: r.p50us, p99: r.p99us, extra: { meanUs: r.meanUs } };
  },
};

export const setup = {
  id: 'setup',
  title: 'Connection setup rate',
  method:
    'Connections opened with a fixed number in flight, each timed from connect to the target’s first byte (WebSocket handshake, JWT verification, target policy, dial, first relayed byte), then closed; rate = successful setups / wall time. wsproxy gets a distinct RS256 token (own jti) per connection, minted before the clock starts.',
  competitors: ['wsproxy', 'plain', 'websockify', 'direct'],
  diagnostic: ['pipe-only', 'wsproxy-noauth'],
  baseline: 'plain',
  subject: 'wsproxy',
  // The time cap only binds a competitor that manages fewer than count / maxSeconds
  // setups a second (websockify forks a Python process per connection); it keeps
  // the run within its time budget, and the rate is over the setups launched.
  params: ({ quick }) => ({ count: quick ? 500 : 2000, inflight: 50, maxSeconds: quick ? 2 : 20 }),
  describe: (p) => `${p.count} relays, ${p.inflight} in flight (at most ${p.maxSeconds} s of launching per sample)`,
  metrics: [
    { id: 'rate', label: 'setups/s', unit: '/s', better: 'higher', targets: [{ vs: 'plain', op: '>=', value: 1.0 }] },
    { id: 'failures', label: 'failed setups', unit: '', better: 'lower', ratio: false, targets: [{ op: '==', value: 0, agg: 'max' }] },
    { id: 'p50', label: 'setup latency p50', unit: 'ms', better: 'lower', info: true },
  ],
  // A whole sample: the first 2 000 setups of a process run at about half speed
  // (heap and socket pools growing, JIT). --quick keeps to its minute.
  warmup: (ctx, handle, p) => setup.sample(ctx, handle, ctx.quick ? { ...p, count: 100, maxSeconds: 1 } : p),
  async sample(ctx, handle, { count, inflight, maxSeconds }) {
    // A distinct token (own jti) per connection, minted before the clock starts.
    const tokens = handle.endpoint.url?.includes('{token}') ? await ctx.auth.mintMany(count) : undefined;
    const { r, cpuMs } = await withCpu(handle, () =>
      ctx.worker.call({ type: 'setup', endpoint: handle.endpoint, ports: ctx.targets.banner, count, inflight, tokens, maxSeconds }),
    );
    return { rate: r.perSecond, failures: r.failures, p50: r.p50us / 1000, extra: { count: r.count, p99ms: r.p99us / 1000, errors: r.errors, proxyCpuMsPerSetup: cpuMs / r.count, clientCpuMsPerSetup: r.clientCpuMs / r.count } };
  },
};

/** How many idle relays fit under the open-file limit: the service holds two sockets per relay. */
export function idleRelayCount(ctx, wanted) {
  const fit = Math.floor((ctx.nofile - 400) / 2);
  return Math.min(wanted, fit);
}

export const memory = {
  id: 'memory',
  title: 'Memory per idle relay',
  method:
    'A fresh service per sample; 200 relays opened and closed as warm-up; RSS read from /proc; N relays opened, 200 in flight (each confirmed by the target’s first byte, client sockets spread over 127.0.0.2–33), left idle for 1.5 s; (RSS − RSS before) / N.',
  competitors: ['wsproxy', 'plain'],
  diagnostic: ['pipe-only'],
  skipNotes: { websockify: 'forks a process per connection: 10 000 Python processes, RSS not comparable', direct: 'no relay process' },
  baseline: 'plain',
  subject: 'wsproxy',
  fresh: true,
  params: (ctx) => {
    const wanted = ctx.quick ? 1000 : 10_000;
    return { wanted, count: idleRelayCount(ctx, wanted), nofile: ctx.nofile };
  },
  describe: (p) => `${p.count} idle relays${p.count < p.wanted ? ` (${p.wanted} wanted; open-file limit ${p.nofile})` : ''}`,
  metrics: [
    { id: 'perRelayKiB', label: 'RSS per idle relay', unit: 'KiB', better: 'lower', targets: [{ vs: 'plain', op: '<=', value: 1.3 }] },
    {
      id: 'established',
      label: 'relays established',
      unit: '',
      better: 'higher',
      ratio: false,
      targets: [
        {
          op: '>=',
          value: (p) => p.wanted,
          agg: 'min',
          // The service holds two sockets per relay; a hard open-file limit that cannot be raised caps the count.
          notJudged: (p, measured) =>
            p.count < p.wanted
              ? `open-file hard limit ${p.nofile} here fits ${p.count} relays (two sockets each); ${measured >= p.count ? 'all of them were established' : `only ${measured} were established`}`
              : null,
        },
      ],
    },
  ],
  async sample(ctx, handle, { count }) {
    const endpoint = handle.endpoint;
    const ports = ctx.targets.banner;
    const sourceAddresses = Array.from({ length: 32 }, (_, i) => `127.0.0.${i + 2}`);
    await ctx.worker.call({ type: 'hold', endpoint, ports, count: 200, inflight: 50, sourceAddresses });
    await ctx.worker.call({ type: 'release' });
    await sleep(1000);
    const before = handle.rss();
    const held = await ctx.worker.call({ type: 'hold', endpoint, ports, count, inflight: 200, sourceAddresses }, 600_000);
    await sleep(1500);
    const after = handle.rss();
    const { openAtRelease } = await ctx.worker.call({ type: 'release' }, 120_000);
    // Established means held: a relay dropped while idle would make the service look smaller than it is.
    if (openAtRelease < held.established) throw new Error(`${held.established - openAtRelease} of ${held.established} idle relays closed before release`);
    return {
      perRelayKiB: (after - before) / 1024 / held.established,
      established: held.established,
      extra: { rssBeforeMiB: before / MiB, rssAfterMiB: after / MiB, openSeconds: held.seconds, failures: held.failures, errors: held.errors },
    };
  },
};

export const backpressure = {
  id: 'backpressure',
  title: 'Backpressure: pushing at a slow reader',
  method:
    'A fresh service per sample; 8 MiB uploaded as warm-up; then the client pushes up to 256 MiB (as fast as the path accepts) at a target that reads 1 MiB/s, for a fixed time — the push is ended early once the steady state shows (the whole 256 MiB would take over four minutes); RSS of the service sampled every 200 ms; growth = max RSS − RSS before the push.',
  competitors: ['wsproxy', 'plain'],
  diagnostic: ['wsproxy-malloc'],
  skipNotes: { websockify: 'forks a process per connection; its RSS is not comparable', direct: 'no relay process' },
  baseline: 'plain',
  subject: 'wsproxy',
  fresh: true,
  params: ({ quick }) => ({ bytes: 256 * MiB, seconds: quick ? 2 : 8 }),
  describe: (p) => `up to ${p.bytes / MiB} MiB pushed at a target reading 1 MiB/s, ended after ${p.seconds} s`,
  metrics: [
    // No ratio: the baseline's growth can be close to zero, and the target is absolute.
    { id: 'growthMiB', label: 'RSS growth', unit: 'MiB', better: 'lower', ratio: false, targets: [{ op: '<', value: 32, agg: 'max' }] },
    { id: 'lateGrowthMiB', label: 'growth in 2nd half', unit: 'MiB', better: 'lower', info: true, ratio: false },
  ],
  async sample(ctx, handle, { bytes, seconds }) {
    await ctx.worker.call({ type: 'bulk', endpoint: handle.endpoint, port: ctx.targets.bulk, dir: 'up', bytes: 8 * MiB });
    await sleep(500);
    const before = handle.rss();
    const slow0 = (await ctx.targetCtl.call({ type: 'slowStats' })).received;
    const samples = [];
    const t0 = Date.now();
    let done = false;
    const job = ctx.worker.call({ type: 'push', endpoint: handle.endpoint, port: ctx.targets.slow, bytes, seconds }).finally(() => (done = true));
    while (!done) {
      samples.push([Date.now() - t0, handle.rss()]);
      await sleep(200);
    }
    const r = await job;
    const slow1 = (await ctx.targetCtl.call({ type: 'slowStats' })).received;
    // The reader takes 1 MiB/s in bursts; half of that proves the relay kept carrying bytes to it.
    if (slow1 - slow0 < (seconds * MiB) / 2) throw new Error(`the slow target read only ${((slow1 - slow0) / MiB).toFixed(1)} MiB in ${seconds} s`);
    const rss = samples.map((s) => s[1]);
    const half = Math.floor(rss.length / 2);
    const maxFirst = Math.max(...rss.slice(0, half));
    const maxAll = Math.max(...rss);
    return {
      growthMiB: (maxAll - before) / MiB,
      lateGrowthMiB: Math.max(0, maxAll - maxFirst) / MiB,
      extra: {
        rssBeforeMiB: before / MiB,
        pushedMiB: r.accepted / MiB,
        targetReadMiB: (slow1 - slow0) / MiB,
        pushSeconds: r.seconds,
        rssTimelineMiB: samples.map(([t, v]) => [t, Math.round((v / MiB) * 10) / 10]),
      },
    };
  },
};
