/** The tunnel figures of issue 5: subdomain HTTP through the reference client, and raw TCP tunnel throughput. */
import { bulkBothWays } from './relay.mjs';

const MiB = 1024 * 1024;

export const tunnelHttp = {
  id: 'tunnel-http',
  title: 'Tunnel HTTP: small GETs through a subdomain',
  method:
    'The reference TunnelClient (its own process) forwards to a local HTTP service; the load generator keeps 50 keep-alive connections busy with GET / (Host <sub>.tunnel.bench) for a fixed time after a 0.5 s warm-up (and one unrecorded 1 s round per competitor before the first sample); requests/s and latency percentiles over the measured window. direct = the same GETs to the local service.',
  competitors: ['tunnel-http', 'direct-http'],
  baseline: 'direct-http',
  subject: 'tunnel-http',
  params: ({ quick }) => ({ inflight: 50, seconds: quick ? 1 : 3 }),
  describe: (p) => `${p.inflight} in flight, ${p.seconds} s per sample`,
  metrics: [
    { id: 'rps', label: 'requests/s', unit: '/s', better: 'higher', targets: [{ op: '>=', value: 2000 }] },
    { id: 'p50', label: 'latency p50', unit: 'ms', better: 'lower', info: true },
    { id: 'p99', label: 'latency p99', unit: 'ms', better: 'lower', targets: [{ op: '<', value: 20 }] },
    { id: 'errors', label: 'errors', unit: '', better: 'lower', ratio: false, targets: [{ op: '==', value: 0, agg: 'max' }] },
  ],
  // One unrecorded second per competitor: the reference client's JIT and its pool of connections to the local service are warm before the first sample.
  warmup: (ctx, handle, { inflight }) => ctx.worker.call({ type: 'httpLoad', endpoint: handle.endpoint, inflight, seconds: 1, warmup: 0 }),
  async sample(ctx, handle, { inflight, seconds }) {
    const a0 = handle.agentCpuMs?.();
    const c0 = handle.cpuMs();
    const r = await ctx.worker.call({ type: 'httpLoad', endpoint: handle.endpoint, inflight, seconds, warmup: 0.5 });
    const extra = { statusErrors: r.statusErrors, proxyCpuMsPerRequest: (handle.cpuMs() - c0) / Math.max(1, r.requests) };
    if (a0 !== undefined) extra.agentCpuMsPerRequest = (handle.agentCpuMs() - a0) / Math.max(1, r.requests);
    return { rps: r.perSecond, p50: r.p50ms, p99: r.p99ms, errors: r.errors, extra };
  },
};

export const tunnelTcp = {
  id: 'tunnel-tcp',
  title: 'Raw TCP tunnel throughput',
  method:
    'Bulk transfer as in the throughput figure, but through the tunnel’s raw TCP port: client → wsproxy raw port → tunnel WebSocket → reference TunnelClient → target. Compared with the wsproxy relay (the same bytes through /relay) and direct TCP.',
  competitors: ['tunnel', 'wsproxy', 'direct'],
  baseline: 'wsproxy',
  subject: 'tunnel',
  params: ({ quick }) => ({ bytes: (quick ? 16 : 64) * MiB }),
  describe: (p) => `${p.bytes / MiB} MiB each way`,
  metrics: [
    { id: 'download', label: 'download', unit: 'MiB/s', better: 'higher', info: true },
    { id: 'upload', label: 'upload', unit: 'MiB/s', better: 'higher', info: true },
  ],
  warmup: (ctx, handle) => bulkBothWays(ctx, handle, { bytes: 8 * MiB }),
  sample: bulkBothWays,
};

/**
 * One download for the v2 stream figure: a streamed HTTP download for the
 * tunnel competitor, the relay's bulk download for the others.
 */
export async function tunnelV2Download(ctx, handle, { bytes }) {
  if (handle.endpoint.kind !== 'http') return bulkBothWays(ctx, handle, { bytes, dirs: 'down' });
  const c0 = handle.cpuMs();
  const r = await ctx.worker.call({ type: 'httpDownload', endpoint: handle.endpoint, bytes });
  return { download: r.mibps, extra: { verifiedBytes: r.bytes, proxyCpuMsPerGiB: { download: ((handle.cpuMs() - c0) * 1024 * MiB) / bytes } } };
}
