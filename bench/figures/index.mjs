/**
 * The registry of figures. A figure is:
 *
 *   id, title, method          what it measures and how (printed in the JSON and the docs)
 *   competitors                competitor ids (proxies/registry.mjs), interleaved A B C A B C …
 *   baseline                   the competitor every ratio is taken against
 *   subject                    the competitor the targets judge
 *   fresh                      true: a new process per sample (RSS figures)
 *   params(ctx) / describe(p)  sizes for --quick and full runs
 *   metrics[]                  { id, label, unit, better: 'higher'|'lower', info?, ratio?: false,
 *                                targets?: [{ vs?, op, value, agg? }] }
 *                              a target with `vs` compares ratio subject/vs (medians); without,
 *                              the subject's median (or its `agg`: 'max'|'min' over samples)
 *   sample(ctx, handle, p)     one measurement of one competitor → { [metric id]: number, extra? }
 *   requires(ctx)              optional: a reason string when the figure cannot run here
 *
 * A figure whose competitor cannot run here (websockify or redis-server not
 * installed) prints as skipped with the reason.
 */
import { backpressure, bulkBothWays, echo, memory, setup, throughput } from './relay.mjs';
import { tunnelHttp, tunnelTcp, tunnelV2Download } from './tunnel.mjs';

const MiB = 1024 * 1024;

/** Issue 10: resumable relays. Competitor variant `wsproxy-resume` is the same service with `&resume=1`. */
const resumeThroughput = {
  ...throughput,
  id: 'resume-throughput',
  title: 'Throughput with resume=1 against without',
  competitors: ['wsproxy-resume', 'wsproxy'],
  baseline: 'wsproxy',
  subject: 'wsproxy-resume',
  metrics: [
    { id: 'download', label: 'download', unit: 'MiB/s', better: 'higher', targets: [{ vs: 'wsproxy', op: '>=', value: 0.9 }] },
    { id: 'upload', label: 'upload', unit: 'MiB/s', better: 'higher', targets: [{ vs: 'wsproxy', op: '>=', value: 0.9 }] },
  ],
  method:
    'As the throughput figure, through one instance of the service: relays opened with resume=1 by the shipped ResumableRelay client (every sent byte kept until acknowledged, acks every 64 KiB or 250 ms both ways) against plain relays; interleaved.',
  diagnostic: [],
  warmup: bulkBothWays,
  sample: bulkBothWays,
};

/** Issue 9: cluster mode. `wsproxy-redis` = wsproxy with REDIS_URL to a local redis-server. */
const clusterSetup = {
  ...setup,
  id: 'cluster-setup',
  title: 'Setup rate with REDIS_URL against without',
  competitors: ['wsproxy-redis', 'wsproxy'],
  baseline: 'wsproxy',
  subject: 'wsproxy-redis',
  metrics: [
    { id: 'rate', label: 'setups/s', unit: '/s', better: 'higher', targets: [{ vs: 'wsproxy', op: '>=', value: 0.8 }] },
    { id: 'failures', label: 'failed setups', unit: '', better: 'lower', ratio: false, targets: [{ op: '==', value: 0, agg: 'max' }] },
  ],
  method:
    'As the setup figure, against two instances of the service: one in cluster mode (REDIS_URL to a local redis-server: per-IP and per-user counts checked and incremented in one Lua round trip per admission, released in one more) and one in memory; interleaved.',
  diagnostic: [],
};

/** Issue 9: tunnel HTTP entering at a replica that does not own the tunnel. */
const clusterTunnelHttp = {
  ...tunnelHttp,
  id: 'cluster-tunnel-http',
  title: 'Tunnel HTTP through a non-owner replica against the owner',
  competitors: ['tunnel-http-nonowner', 'tunnel-http-owner'],
  baseline: 'tunnel-http-owner',
  subject: 'tunnel-http-nonowner',
  method:
    'Two replicas on one local redis-server; the reference TunnelClient (protocol v2, own process) registers at replica A. 50 keep-alive connections busy with GET / through the subdomain, sent either to A (the owner) or to B, which looks the owner up in Redis and forwards each request to A over its advertise URL; interleaved.',
  metrics: [
    { id: 'rps', label: 'requests/s', unit: '/s', better: 'higher', targets: [{ vs: 'tunnel-http-owner', op: '>=', value: 0.7 }] },
    { id: 'p50', label: 'latency p50', unit: 'ms', better: 'lower', info: true },
    { id: 'p99', label: 'latency p99', unit: 'ms', better: 'lower', info: true },
    { id: 'errors', label: 'errors', unit: '', better: 'lower', ratio: false, targets: [{ op: '==', value: 0, agg: 'max' }] },
  ],
};

/** Issue 11: tunnel protocol v2. */
const tunnelV2Http = {
  ...tunnelHttp,
  id: 'tunnel-v2-http',
  title: 'Tunnel HTTP, protocol v2 against v1',
  method:
    'As tunnel-http, for two reference TunnelClients (own processes) on the same wsproxy, one speaking tunnel protocol v1 and one v2: 50 keep-alive connections busy with GET / through each subdomain, interleaved.',
  competitors: ['tunnel-http-v2', 'tunnel-http'],
  baseline: 'tunnel-http',
  subject: 'tunnel-http-v2',
  metrics: [
    { id: 'rps', label: 'requests/s', unit: '/s', better: 'higher', targets: [{ vs: 'tunnel-http', op: '>=', value: 1.0 }] },
    { id: 'p99', label: 'latency p99', unit: 'ms', better: 'lower', targets: [{ vs: 'tunnel-http', op: '<=', value: 1.0 }] },
    { id: 'p50', label: 'latency p50', unit: 'ms', better: 'lower', info: true },
    { id: 'errors', label: 'errors', unit: '', better: 'lower', ratio: false, targets: [{ op: '==', value: 0, agg: 'max' }] },
  ],
};

const tunnelV2Stream = {
  ...throughput,
  id: 'tunnel-v2-stream',
  title: 'Tunnel v2 streamed HTTP download against the relay',
  method:
    'One streamed HTTP download per sample through a v2 tunnel (GET /download, Host <sub>.tunnel.bench → wsproxy → tunnel WebSocket → reference TunnelClient → local HTTP service sending the pattern, chunked), every byte checked; against the same byte count downloaded through the wsproxy relay (/relay to the bulk target).',
  competitors: ['tunnel-http-v2-stream', 'wsproxy'],
  diagnostic: [],
  baseline: 'wsproxy',
  subject: 'tunnel-http-v2-stream',
  params: ({ quick }) => ({ bytes: (quick ? 32 : 128) * MiB }),
  describe: (p) => `${p.bytes / MiB} MiB download`,
  metrics: [{ id: 'download', label: 'download', unit: 'MiB/s', better: 'higher', targets: [{ vs: 'wsproxy', op: '>=', value: 0.5 }] }],
  warmup: (ctx, handle) => tunnelV2Download(ctx, handle, { bytes: 8 * MiB }),
  sample: tunnelV2Download,
};

/** In run order. */
export const FIGURES = [throughput, echo, setup, memory, backpressure, tunnelHttp, tunnelTcp, resumeThroughput, clusterSetup, clusterTunnelHttp, tunnelV2Http, tunnelV2Stream];
