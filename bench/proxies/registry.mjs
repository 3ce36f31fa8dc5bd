/**
 * The competitors: every way of getting bytes from a client to a loopback
 * target that a figure can compare. Each one starts what it needs and returns a
 * handle:
 *
 *   { id, endpoint, pid, rss(), cpuMs(), stop() }
 *
 * `endpoint` tells the load generator how to reach target port P:
 *   { kind: 'ws',   url: 'ws://…{port}…{token}…', token?, headers? }  — a WebSocket relay
 *   { kind: 'tcp',  host, port? }                      — plain TCP (port fixed for a tunnel)
 *   { kind: 'http', port, host }                       — HTTP with a Host header
 * `pid` is the process whose RSS/CPU a figure reports (null: nothing to measure).
 *
 * Adding a competitor or a variant (another configuration of wsproxy, a query
 * flag such as resume=1) is one entry here; figures name competitors by id.
 */
import { existsSync, openSync, readFileSync, writeFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import {
  cpuMsOf,
  firstJsonLine,
  freePort,
  freePortRange,
  rssOf,
  sysMsOf,
  minorFaultsOf,
  spawnRaised,
  stopChild,
  tail,
  waitHttpOk,
  waitTcp,
} from '../lib/proc.mjs';

export const TUNNEL_DOMAIN = 'tunnel.bench';

function onPath(cmd) {
  try {
    execFileSync('bash', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function processHandle(id, child, endpoint, stopExtra) {
  return {
    id,
    endpoint,
    pid: child.pid,
    rss: () => rssOf(child.pid),
    cpuMs: () => cpuMsOf(child.pid),
    sysMs: () => sysMsOf(child.pid),
    minorFaults: () => minorFaultsOf(child.pid),
    stop: async () => {
      await stopChild(child);
      if (stopExtra) await stopExtra();
    },
  };
}

/**
 * The `ENV` settings of the Dockerfile's final stage (the production image), so
 * the bench runs what ships: a setting added there (NODE_OPTIONS, allocator
 * tuning…) is benchmarked without touching the bench.
 */
export function dockerfileEnv(root) {
  let text;
  try {
    text = readFileSync(join(root, 'Dockerfile'), 'utf8');
  } catch {
    return {};
  }
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  let env = {};
  for (const line of lines) {
    const l = line.trim();
    if (/^FROM\s/i.test(l)) env = {};
    const m = /^ENV\s+(.*)$/i.exec(l);
    if (!m) continue;
    const body = m[1].trim();
    if (/^[A-Za-z_][A-Za-z0-9_]*\s+[^=]*$/.test(body) && !body.includes('=')) {
      const [k, ...v] = body.split(/\s+/);
      env[k] = v.join(' ');
    } else {
      for (const kv of body.match(/[A-Za-z_][A-Za-z0-9_]*=("[^"]*"|\S*)/g) ?? []) {
        const i = kv.indexOf('=');
        env[kv.slice(0, i)] = kv.slice(i + 1).replace(/^"|"$/g, '');
      }
    }
  }
  return env;
}

/** Production settings (the Dockerfile's ENV), limits raised to fit the load, loopback targets allowed. */
export function wsproxyEnv(ctx, port, extra = {}) {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    ...dockerfileEnv(ctx.root),
    PORT: String(port),
    BIND_HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    CLERK_JWKS_URL: ctx.auth.jwksUrl,
    BLOCKED_TARGETS: '10.0.0.0/8',
    ALLOWED_TARGETS: '127.0.0.1/32',
    MAX_CONNECTIONS: '1000000',
    MAX_CONNS_PER_IP: '1000000',
    MAX_CONNS_PER_USER: '1000000',
    MAX_TUNNEL_HTTP_PER_IP: '100000',
    TUNNEL_DOMAIN,
    TUNNEL_PUBLIC_SCHEME: 'http',
    TUNNEL_BIND_HOST: '127.0.0.1',
    // Only shortens the bench's teardown: SIGTERM closes live relays after 1 s.
    SHUTDOWN_TIMEOUT_MS: '1000',
    ...extra,
  };
}

/** Starts dist/main.js; `extraEnv` makes variants (cluster, resumption…). */
async function startWsproxy(ctx, id, { extraEnv = {}, query = '', nodeArgs = [], root = ctx.root } = {}) {
  const port = await freePort();
  const tunnelMin = await freePortRange(8);
  const env = wsproxyEnv(ctx, port, { TUNNEL_PORT_MIN: String(tunnelMin), TUNNEL_PORT_MAX: String(tunnelMin + 7), ...extraEnv });
  const child = spawnRaised('node', [...ctx.nodeFlags, ...nodeArgs, join(root, 'dist/main.js')], { env, cwd: root });
  const out = tail(child.stdout);
  const err = tail(child.stderr);
  try {
    await waitHttpOk(port, '/health/ready', 30_000, child);
  } catch (e) {
    await stopChild(child);
    throw new Error(`${id}: ${e.message}\n${out.text}${err.text}`);
  }
  const endpoint = {
    kind: 'ws',
    url: `ws://127.0.0.1:${port}/relay?host=127.0.0.1&port={port}&token={token}${query}`,
    token: ctx.auth.token,
  };
  const h = processHandle(id, child, endpoint);
  h.port = port;
  h.logs = () => out.text + err.text;
  return h;
}

export const COMPETITORS = {
  wsproxy: {
    label: 'wsproxy',
    description: 'this service, dist/main.js, auth on (RS256 JWT per connection), target policy, limits, LOG_LEVEL=warn',
    available: (ctx) => (existsSync(join(ctx.root, 'dist/main.js')) ? null : 'dist/main.js missing (run npm run build)'),
    start: (ctx) => startWsproxy(ctx, 'wsproxy'),
  },

  'wsproxy-resume': {
    label: 'wsproxy, resume=1',
    description: 'the same service process, relays opened with resume=1 by the shipped ResumableRelay client (acks, replay buffer kept until acknowledged)',
    available: (ctx) => COMPETITORS.wsproxy.available(ctx),
    // The same process as `wsproxy` (resume=1 is a query flag): a fresh instance
    // against a long-used one would compare heaps, not relays.
    start: async (ctx) => {
      const proxy = await ctx.pool.get('wsproxy');
      return { ...proxy, id: 'wsproxy-resume', endpoint: { ...proxy.endpoint, kind: 'resumable', url: `${proxy.endpoint.url}&resume=1` }, stop: async () => {} };
    },
  },

  'wsproxy-against': {
    label: 'wsproxy (--against)',
    description: 'exploration (--against DIR): the build in another checkout, DIR/dist/main.js, with the same settings, beside this one in every wsproxy figure',
    available: (ctx) =>
      !ctx.againstRoot ? 'no --against' : existsSync(join(ctx.againstRoot, 'dist/main.js')) ? null : `${ctx.againstRoot}/dist/main.js missing`,
    start: (ctx) => startWsproxy(ctx, 'wsproxy-against', { root: ctx.againstRoot }),
  },

  'wsproxy-noauth': {
    label: 'wsproxy, auth off',
    description: 'diagnostic (--diagnose): the same service with CLERK_JWKS_URL empty — the JWT verification’s share',
    available: (ctx) => COMPETITORS.wsproxy.available(ctx),
    start: (ctx) => startWsproxy(ctx, 'wsproxy-noauth', { extraEnv: { CLERK_JWKS_URL: '' } }),
  },

  'wsproxy-malloc': {
    label: 'wsproxy, MALLOC_TRIM_THRESHOLD_',
    description:
      'diagnostic (--diagnose): the same service with MALLOC_TRIM_THRESHOLD_=33554432 (the image shipped that before 128 MiB): glibc keeps up to 32 MiB of freed heap, and a GC that frees more gives the rest back to the kernel, to be faulted in again',
    available: (ctx) => COMPETITORS.wsproxy.available(ctx),
    start: (ctx) => startWsproxy(ctx, 'wsproxy-malloc', { extraEnv: { MALLOC_TRIM_THRESHOLD_: '33554432' } }),
  },

  plain: {
    label: 'plain relay',
    description: 'ws + net, createWebSocketStream piped both ways (bench/proxies/plain-relay.mjs)',
    available: () => null,
    start: async (ctx) => {
      const child = spawnRaised('node', [...ctx.nodeFlags, join(ctx.root, 'bench/proxies/plain-relay.mjs')], { cwd: ctx.root });
      const err = tail(child.stderr);
      let port;
      try {
        ({ port } = await firstJsonLine(child, 15_000, 'plain relay'));
      } catch (e) {
        await stopChild(child);
        throw new Error(`${e.message}\n${err.text}`);
      }
      return processHandle('plain', child, { kind: 'ws', url: `ws://127.0.0.1:${port}/?host=127.0.0.1&port={port}` });
    },
  },

  'pipe-only': {
    label: 'pipeRelay alone',
    description: 'diagnostic (--diagnose): wsproxy’s relay-pipe behind a bare ws server, no Nest/auth/policy (bench/proxies/pipe-relay.mjs)',
    available: (ctx) => (existsSync(join(ctx.root, 'dist/relay/relay-pipe.js')) ? null : 'dist/relay/relay-pipe.js missing'),
    start: async (ctx) => {
      const child = spawnRaised('node', [...ctx.nodeFlags, join(ctx.root, 'bench/proxies/pipe-relay.mjs')], { cwd: ctx.root });
      const { port } = await firstJsonLine(child, 15_000, 'pipe-only');
      return processHandle('pipe-only', child, { kind: 'ws', url: `ws://127.0.0.1:${port}/?host=127.0.0.1&port={port}` });
    },
  },

  websockify: {
    label: 'websockify',
    description: 'Debian websockify (Python, numpy), token file mapping each target port, fork per connection',
    available: () => (onPath('websockify') ? null : 'websockify not on PATH (apt-get install websockify)'),
    start: async (ctx) => {
      const port = await freePort();
      const tokens = join(ctx.tmp, 'websockify-targets');
      const t = ctx.targets;
      const all = [t.bulk, t.echo, t.slow, ...t.banner];
      writeFileSync(tokens, all.map((p) => `p${p}: 127.0.0.1:${p}\n`).join(''));
      const log = openSync(join(ctx.tmp, 'websockify.log'), 'a');
      const child = spawnRaised('websockify', ['--token-plugin', 'TokenFile', '--token-source', tokens, `127.0.0.1:${port}`], {
        stdout: log,
        stderr: log,
      });
      closeSync(log);
      await waitTcp(port, 15_000, child);
      const h = processHandle('websockify', child, { kind: 'ws', url: `ws://127.0.0.1:${port}/?token=p{port}` });
      // The work happens in a forked child per connection, whose CPU reaches the parent's counters only once reaped.
      h.cpuMs = () => NaN;
      h.sysMs = () => NaN;
      h.minorFaults = () => NaN;
      return h;
    },
  },

  direct: {
    label: 'direct TCP',
    description: 'the client connects straight to the target (ceiling)',
    available: () => null,
    start: async () => ({ id: 'direct', endpoint: { kind: 'tcp', host: '127.0.0.1' }, pid: null, rss: () => NaN, cpuMs: () => NaN, stop: async () => {} }),
  },

  tunnel: {
    label: 'wsproxy tunnel (raw TCP port)',
    description: 'client → wsproxy raw tunnel port → tunnel WebSocket → reference TunnelClient (own process) → target',
    available: (ctx) => tunnelAvailable(ctx),
    start: async (ctx) => {
      const proxy = await ctx.pool.get('wsproxy');
      const agent = await ctx.pool.get('tunnel-agent');
      return { ...agent.proxyHandle(proxy), id: 'tunnel', endpoint: { kind: 'tcp', host: '127.0.0.1', port: agent.rawPort }, stop: async () => {} };
    },
  },

  'tunnel-http': {
    label: 'wsproxy tunnel (subdomain HTTP)',
    description: 'HTTP GET with Host <sub>.tunnel.bench → wsproxy → tunnel WebSocket → reference TunnelClient → local HTTP service',
    available: (ctx) => tunnelAvailable(ctx),
    start: async (ctx) => {
      const proxy = await ctx.pool.get('wsproxy');
      const agent = await ctx.pool.get('tunnel-agent');
      return {
        ...agent.proxyHandle(proxy),
        id: 'tunnel-http',
        endpoint: { kind: 'http', port: proxy.port, host: `${agent.subdomain}.${TUNNEL_DOMAIN}` },
        stop: async () => {},
      };
    },
  },

  'tunnel-http-v2': {
    label: 'wsproxy tunnel v2 (subdomain HTTP)',
    description: 'as tunnel-http, with the reference TunnelClient speaking tunnel protocol v2 (binary frames, streamed bodies, credit per stream)',
    available: (ctx) => tunnelAvailable(ctx),
    start: (ctx) => tunnelHttpThrough(ctx, 'tunnel-http-v2', 'tunnel-agent-v2'),
  },

  'tunnel-http-v2-stream': {
    label: 'wsproxy tunnel v2 (streamed HTTP download)',
    description: 'GET /download with Host <sub>.tunnel.bench → wsproxy → tunnel WebSocket (v2) → reference TunnelClient → local HTTP service streaming the pattern',
    available: (ctx) => tunnelAvailable(ctx),
    start: (ctx) => tunnelHttpThrough(ctx, 'tunnel-http-v2-stream', 'tunnel-agent-v2'),
  },

  'direct-http': {
    label: 'direct HTTP',
    description: 'the same GET straight to the local HTTP service (ceiling)',
    available: () => null,
    start: async (ctx) => ({
      id: 'direct-http',
      endpoint: { kind: 'http', port: ctx.targets.http, host: '127.0.0.1' },
      pid: null,
      rss: () => NaN,
      cpuMs: () => NaN,
      stop: async () => {},
    }),
  },

  'wsproxy-redis': {
    label: 'wsproxy, REDIS_URL',
    description: 'the same service in cluster mode: limits counted in a local redis-server (one Lua round trip per admission, one per release)',
    available: (ctx) => clusterAvailable(ctx),
    start: (ctx) => startReplica(ctx, 'wsproxy-redis', '127.0.0.1'),
  },

  'tunnel-http-owner': {
    label: 'tunnel HTTP at the owner replica',
    description: 'cluster of two replicas on one redis-server; GETs through the subdomain sent to the replica holding the tunnel (reference client, protocol v2)',
    available: (ctx) => clusterAvailable(ctx),
    start: (ctx) => clusterTunnelHttp(ctx, 'tunnel-http-owner', 'cluster-a'),
  },

  'tunnel-http-nonowner': {
    label: 'tunnel HTTP at a non-owner replica',
    description: 'the same GETs sent to the other replica, which forwards each to the owner over its advertise URL (signed with CLUSTER_SECRET)',
    available: (ctx) => clusterAvailable(ctx),
    start: (ctx) => clusterTunnelHttp(ctx, 'tunnel-http-nonowner', 'cluster-b'),
  },

  /** Not a competitor: the redis-server of the cluster figures. */
  redis: { hidden: true, available: (ctx) => clusterAvailable(ctx), start: (ctx) => startRedis(ctx) },
  /** Not a competitor: cluster replica A (owns the bench tunnel). */
  'cluster-a': { hidden: true, available: (ctx) => clusterAvailable(ctx), start: (ctx) => startReplica(ctx, 'cluster-a', '127.0.0.2') },
  /** Not a competitor: cluster replica B. */
  'cluster-b': { hidden: true, available: (ctx) => clusterAvailable(ctx), start: (ctx) => startReplica(ctx, 'cluster-b', '127.0.0.3') },
  /** Not a competitor: the reference client's tunnel, registered at replica A. */
  'cluster-agent': { hidden: true, available: (ctx) => clusterAvailable(ctx), start: (ctx) => startTunnelAgent(ctx, 'cluster-agent', 2, 'cluster-a') },

  /** Not a competitor: the reference tunnel client process the tunnel competitors share. */
  'tunnel-agent': {
    hidden: true,
    available: (ctx) => tunnelAvailable(ctx),
    start: (ctx) => startTunnelAgent(ctx, 'tunnel-agent', 1),
  },

  /** Not a competitor: the same, speaking tunnel protocol v2 (its own tunnel on the same wsproxy). */
  'tunnel-agent-v2': {
    hidden: true,
    available: (ctx) => tunnelAvailable(ctx),
    start: (ctx) => startTunnelAgent(ctx, 'tunnel-agent-v2', 2),
  },
};

/** HTTP through the cluster's tunnel (registered at replica A), entering at `replicaId`; the proxy measured is that replica. */
async function clusterTunnelHttp(ctx, id, replicaId) {
  const agent = await ctx.pool.get('cluster-agent');
  const entry = await ctx.pool.get(replicaId);
  const owner = await ctx.pool.get('cluster-a');
  const endpoint = { kind: 'http', port: entry.port, host: `${agent.subdomain}.${TUNNEL_DOMAIN}` };
  return { ...agent.proxyHandle(entry), id, endpoint, ownerCpuMs: owner.cpuMs, stop: async () => {} };
}

/** An HTTP endpoint through the tunnel of `agentId` (the pool shares wsproxy and the agent). */
async function tunnelHttpThrough(ctx, id, agentId) {
  const proxy = await ctx.pool.get('wsproxy');
  const agent = await ctx.pool.get(agentId);
  return { ...agent.proxyHandle(proxy), id, endpoint: { kind: 'http', port: proxy.port, host: `${agent.subdomain}.${TUNNEL_DOMAIN}` }, stop: async () => {} };
}

/** The reference tunnel client in its own process, registered at `proxyId` (the shared wsproxy) with tunnel protocol `protocol`. */
async function startTunnelAgent(ctx, id, protocol, proxyId = 'wsproxy') {
  const proxy = await ctx.pool.get(proxyId);
  const child = spawnRaised('node', [...ctx.nodeFlags, join(ctx.root, 'bench/client/tunnel-agent.mjs'), `ws://127.0.0.1:${proxy.port}/tunnel`, String(ctx.targets.http), String(ctx.targets.bulk)], {
    env: { ...process.env, WSPROXY_TOKEN: ctx.auth.token, TUNNEL_PROTOCOL: String(protocol) },
  });
  const err = tail(child.stderr);
  let ready;
  try {
    ready = await firstJsonLine(child, 15_000, 'tunnel agent');
  } catch (e) {
    await stopChild(child);
    throw new Error(`${e.message}\n${err.text}`);
  }
  if (!ready.rawPort || !ready.subdomain) throw new Error(`tunnel agent: no raw port or subdomain: ${JSON.stringify(ready)}`);
  return {
    id,
    pid: child.pid,
    rawPort: ready.rawPort,
    subdomain: ready.subdomain,
    /** The proxy is what tunnel figures measure (its RSS and CPU); the agent's CPU is reported beside it. */
    proxyHandle: (p) => ({ pid: p.pid, rss: p.rss, cpuMs: p.cpuMs, agentCpuMs: () => cpuMsOf(child.pid) }),
    stop: () => stopChild(child),
  };
}

/** A throwaway redis-server on a free loopback port, persistence off, for the cluster figures. */
async function startRedis(ctx) {
  const port = await freePort();
  const child = spawnRaised('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', ctx.tmp, '--daemonize', 'no']);
  const out = tail(child.stdout);
  try {
    await waitTcp(port, 15_000, child);
  } catch (e) {
    await stopChild(child);
    throw new Error(`redis-server: ${e.message}\n${out.text}`);
  }
  return { id: 'redis', url: `redis://127.0.0.1:${port}`, pid: child.pid, stop: () => stopChild(child) };
}

const BENCH_CLUSTER_SECRET = 'bench-cluster-secret-0123456789abcdef';

/**
 * A cluster replica on the bench's redis. Replicas share one raw-port range
 * (the pool is cluster-wide) and listen on it at their own loopback address.
 * A new Redis makes the first replica wait one liveness TTL (the warm-up,
 * docs/scaling.md#continuity) before it is ready: `--quick`, a smoke check,
 * beats every 500 ms to keep that to 1.5 s; full runs keep the default.
 */
async function startReplica(ctx, id, tunnelBindHost) {
  const redis = await ctx.pool.get('redis');
  ctx.clusterPorts ??= freePortRange(8);
  const tunnelMin = await ctx.clusterPorts;
  return startWsproxy(ctx, id, {
    extraEnv: {
      REDIS_URL: redis.url,
      CLUSTER_SECRET: BENCH_CLUSTER_SECRET,
      ...(ctx.quick ? { CLUSTER_HEARTBEAT_MS: '500' } : {}),
      TUNNEL_BIND_HOST: tunnelBindHost,
      TUNNEL_PORT_MIN: String(tunnelMin),
      TUNNEL_PORT_MAX: String(tunnelMin + 7),
    },
  });
}

function clusterAvailable(ctx) {
  if (!onPath('redis-server')) return 'redis-server not on PATH (apt-get install redis-server)';
  return tunnelAvailable(ctx);
}

function tunnelAvailable(ctx) {
  if (!existsSync(join(ctx.root, 'dist/tunnel/client/tunnel-client.js'))) return 'dist/tunnel/client/ missing (tunnels not built)';
  return COMPETITORS.wsproxy.available(ctx);
}

/**
 * Long-lived competitors, started on first use and stopped at the end. Fresh
 * ones (memory, backpressure) are started per sample with `startFresh`.
 */
export function createPool(ctx) {
  const started = new Map();
  return {
    get(id) {
      if (!started.has(id)) {
        const p = COMPETITORS[id].start(ctx);
        started.set(id, p);
        p.catch(() => started.delete(id));
      }
      return started.get(id);
    },
    startFresh: (id) => COMPETITORS[id].start(ctx),
    async stopAll() {
      // Dependents first (tunnel agent before the proxy it is connected to).
      const order = [...started.keys()].reverse();
      for (const id of order) {
        try {
          const h = await started.get(id);
          await h.stop();
        } catch {
          // failed to start; nothing to stop
        }
      }
      started.clear();
    },
  };
}
