/**
 * The deployment files checked against the application itself: every
 * environment value passes the real config schema, probe paths are real routes
 * of a booted app, ports match the configuration, the grace period covers the
 * drain, and the security settings hold.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, relative, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, parseAllDocuments } from 'yaml';
import { CONFIG_VARS, parseConfig, type WsproxyConfig } from '../src/config/config.schema.js';
import { MetricsListener } from '../src/metrics/metrics-listener.service.js';
import { startApp, type TestApp } from './support/app.js';

const ROOT = process.cwd();
const K8S = join(ROOT, 'deploy/kubernetes/base');

// Loosely typed views of the manifests: the assertions are the schema.
type Doc = any;

function loadK8s(): Doc[] {
  return loadDir(K8S);
}

/** Every document of the .yaml files in `dir` but its kustomization.yaml. */
function loadDir(dir: string): Doc[] {
  const docs: Doc[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
    for (const d of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      assert.equal(d.errors.length, 0, `${file}: ${d.errors.map((e) => e.message).join('; ')}`);
      const obj = d.toJS() as Doc;
      if (obj) docs.push({ ...obj, __file: file });
    }
  }
  return docs;
}

/** `[name, tag]` of an image reference; the tag is null when there is none (a digest counts as pinned: `@sha256`). */
function splitImage(image: string): [string, string | null] {
  const at = image.indexOf('@');
  if (at >= 0) return [image.slice(0, at), image.slice(at)];
  const colon = image.lastIndexOf(':');
  return colon > image.lastIndexOf('/') ? [image.slice(0, colon), image.slice(colon + 1)] : [image, null];
}

function one(docs: Doc[], kind: string, name?: string): Doc {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata?.name === name));
  assert.equal(found.length, 1, `exactly one ${kind}${name ? ` ${name}` : ''}`);
  return found[0];
}

function envOf(container: Doc): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    assert.equal(typeof e.value, 'string', `env ${e.name} must be a string (quote numbers in YAML)`);
    env[e.name] = e.value;
  }
  return env;
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Values the test must not use as is: they would reach outside loopback or bind fixed ports. */
const TEST_OVERRIDES = {
  PORT: '0',
  METRICS_PORT: '0',
  BIND_HOST: '127.0.0.1',
  LOG_LEVEL: 'silent',
  CLERK_JWKS_URL: '',
  TUNNEL_TCP_ENABLED: 'false',
};

describe('Kubernetes manifests', () => {
  const docs = loadK8s();
  const deployment = one(docs, 'Deployment', 'wsproxy');
  const pod = deployment.spec.template;
  const container = pod.spec.containers[0];
  const env = envOf(container);
  const config: WsproxyConfig = parseConfig(env);
  const portByName = new Map<string, number>(container.ports.map((p: Doc) => [p.name, p.containerPort]));
  let app: TestApp;

  before(async () => {
    app = await startApp({ ...env, ...TEST_OVERRIDES });
  });
  after(async () => {
    await app?.close();
  });

  test('kustomization lists every manifest', () => {
    const k = parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8')) as Doc;
    const files = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    assert.deepEqual([...k.resources].sort(), files.sort());
  });

  test('images are pinned: the wsproxy image set by kustomize images:, no latest or untagged image with IfNotPresent', () => {
    const k = parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8')) as Doc;
    const [name, tag] = splitImage(container.image);
    const entry = (k.images ?? []).find((i: Doc) => i.name === name);
    assert.ok(entry, `base/kustomization.yaml images: sets ${name}`);
    assert.ok(entry.digest || (typeof entry.newTag === 'string' && entry.newTag !== '' && entry.newTag !== 'latest'), `images: pins ${name} to a release, not ${entry.newTag}`);
    assert.equal(tag, entry.newTag ?? tag, 'deployment.yaml names the same tag as kustomization.yaml, for kubectl apply -f');
    const containers: Doc[] = [...docs, ...loadDir(join(ROOT, 'deploy/kubernetes/cluster'))]
      .filter((d) => d.spec?.template?.spec)
      .flatMap((d) => [...(d.spec.template.spec.initContainers ?? []), ...d.spec.template.spec.containers])
      .filter((c) => c.image !== undefined); // a patch's container keeps its base's image
    assert.ok(containers.length >= 2);
    for (const c of containers) {
      const [, t] = splitImage(c.image);
      // With IfNotPresent (the default for any tag but latest) a node keeps the first image it pulled under a tag.
      if (c.imagePullPolicy !== 'Always') assert.ok(t !== null && t !== 'latest', `${c.name}: image ${c.image} with ${c.imagePullPolicy ?? 'the default pull policy'}`);
    }
  });

  test('the Deployment environment passes the config schema, with the default ports', () => {
    assert.equal(env.PORT, CONFIG_VARS.port.default);
    assert.equal(env.TUNNEL_PORT_MIN ?? CONFIG_VARS.tunnelPortMin.default, CONFIG_VARS.tunnelPortMin.default);
    assert.equal(env.TUNNEL_PORT_MAX ?? CONFIG_VARS.tunnelPortMax.default, CONFIG_VARS.tunnelPortMax.default);
    assert.equal(portByName.get('http'), config.port);
    assert.ok(config.metricsPort !== null, 'metrics kept off the public port');
    assert.equal(portByName.get('metrics'), config.metricsPort);
    assert.equal(pod.metadata.annotations['prometheus.io/port'], String(config.metricsPort));
    assert.ok(config.trustedProxies.length > 0, 'TRUSTED_PROXIES set for the ingress');
  });

  test('probes point at real routes of the app', async () => {
    const live = container.livenessProbe.httpGet;
    const ready = container.readinessProbe.httpGet;
    assert.equal(live.path, '/health');
    assert.equal(ready.path, '/health/ready');
    for (const probe of [live, ready]) {
      assert.equal(portByName.get(probe.port), config.port, `probe port ${probe.port} is the HTTP port`);
      const res = await fetch(`${app.baseUrl}${probe.path}`);
      assert.equal(res.status, 200, probe.path);
      await res.arrayBuffer();
    }
    const metricsPort = app.app.get(MetricsListener).port;
    const res = await fetch(`http://127.0.0.1:${metricsPort}${pod.metadata.annotations['prometheus.io/path']}`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^wsproxy_relays_active /m);
  });

  test('the grace period outlasts preStop plus SHUTDOWN_TIMEOUT_MS', () => {
    const grace = pod.spec.terminationGracePeriodSeconds * 1000;
    const preStop = container.lifecycle?.preStop;
    const preStopMs = preStop?.sleep
      ? preStop.sleep.seconds * 1000
      : Number(/setTimeout\([^,]+,\s*(\d+)\)/.exec((preStop?.exec?.command ?? []).join(' '))?.[1] ?? 0);
    // + 1 s: the drain's final wait for close frames to flush.
    assert.ok(grace > preStopMs + config.shutdownTimeoutMs + 1000, `grace ${grace} ms vs preStop ${preStopMs} + drain ${config.shutdownTimeoutMs}`);
  });

  test('security context: non-root, read-only root, no privilege escalation, capabilities dropped', () => {
    const podSec = pod.spec.securityContext;
    const sec = container.securityContext;
    assert.equal(podSec.runAsNonRoot, true);
    assert.equal(sec.runAsNonRoot, true);
    assert.ok(podSec.runAsUser > 0);
    assert.equal(podSec.runAsUser, dockerfileUser().uid, 'same uid as the image');
    assert.equal(sec.allowPrivilegeEscalation, false);
    assert.equal(sec.readOnlyRootFilesystem, true);
    assert.ok(sec.capabilities.drop.includes('ALL'));
    assert.equal(pod.spec.automountServiceAccountToken, false);
  });

  test('resource requests and limits are set', () => {
    for (const kind of ['requests', 'limits']) {
      assert.ok(container.resources[kind].cpu, `${kind}.cpu`);
      assert.ok(container.resources[kind].memory, `${kind}.memory`);
    }
  });

  test('Services, PodDisruptionBudget and Ingress select the pods and their ports', () => {
    const labels = pod.metadata.labels;
    assert.ok(matches(deployment.spec.selector.matchLabels, labels));
    const service = one(docs, 'Service', 'wsproxy');
    assert.ok(matches(service.spec.selector, labels));
    for (const p of service.spec.ports) assert.ok(portByName.has(p.targetPort), `Service targetPort ${p.targetPort}`);
    const pdb = one(docs, 'PodDisruptionBudget', 'wsproxy');
    assert.ok(matches(pdb.spec.selector.matchLabels, labels));
    assert.ok(pdb.spec.maxUnavailable >= 1 || pdb.spec.minAvailable < deployment.spec.replicas, 'a drain can proceed');

    const tcp = one(docs, 'Service', 'wsproxy-tunnel-tcp');
    assert.ok(matches(tcp.spec.selector, labels));
    const ports = tcp.spec.ports.map((p: Doc) => {
      assert.equal(p.targetPort, p.port);
      assert.equal(p.protocol, 'TCP');
      return p.port as number;
    });
    const expected = Array.from({ length: config.tunnelPortMax - config.tunnelPortMin + 1 }, (_, i) => config.tunnelPortMin + i);
    assert.deepEqual(ports, expected, 'raw tunnel ports = TUNNEL_PORT_MIN..TUNNEL_PORT_MAX');
  });

  test('the Ingress routes both hosts with WebSocket-friendly timeouts', () => {
    const ingress = one(docs, 'Ingress', 'wsproxy');
    const service = one(docs, 'Service', 'wsproxy');
    const hosts = ingress.spec.rules.map((r: Doc) => r.host);
    assert.ok(hosts.includes(`*.${config.tunnelDomain}`), 'wildcard tunnel host = TUNNEL_DOMAIN');
    assert.equal(hosts.length, 2);
    const tlsHosts = ingress.spec.tls.flatMap((t: Doc) => t.hosts);
    for (const h of hosts) assert.ok(tlsHosts.includes(h), `TLS for ${h}`);
    for (const r of ingress.spec.rules) {
      const backend = r.http.paths[0].backend.service;
      assert.equal(backend.name, service.metadata.name);
      assert.ok(service.spec.ports.some((p: Doc) => p.name === backend.port.name), `Service port ${backend.port.name}`);
    }
    const a = ingress.metadata.annotations;
    for (const k of ['proxy-read-timeout', 'proxy-send-timeout']) {
      const seconds = Number(a[`nginx.ingress.kubernetes.io/${k}`]);
      assert.ok(seconds >= 3600 && seconds * 1000 > 2 * config.pingIntervalMs, k);
    }
    assert.equal(a['nginx.ingress.kubernetes.io/proxy-buffering'], 'off');
  });
});

/** What an operator's .env gives the variables a compose file requires (`${VAR?message}`). */
const REQUIRED_SAMPLES: Record<string, string> = {
  CLERK_JWKS_URL: 'https://clerk.example.com/.well-known/jwks.json',
  ALLOWED_ORIGINS: 'https://app.example.com',
  CLUSTER_SECRET: 'a-cluster-secret-of-32-characters',
};

/** `${VAR:-default}` as Compose interpolates it when VAR is unset; a required `${VAR?msg}` takes its sample. */
function composeDefault(v: string): string {
  return v.replace(/\$\{([A-Z0-9_]+)(?:(:?-)([^}]*)|(:?\?)[^}]*)?\}/g, (_m, name: string, dash?: string, def?: string, required?: string) => {
    if (required !== undefined) {
      assert.ok(name in REQUIRED_SAMPLES, `no sample for required ${name}`);
      return REQUIRED_SAMPLES[name]!;
    }
    return dash !== undefined ? (def ?? '') : '';
  });
}

function durationMs(d: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(d);
  assert.ok(m, `duration ${d}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'];
}

describe('docker-compose.yml and Caddyfile', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as Doc;
  const svc = compose.services.wsproxy;
  const env: Record<string, string> = Object.fromEntries(Object.entries(svc.environment).map(([k, v]) => [k, composeDefault(String(v))]));
  const config = parseConfig(env);
  const caddyfile = readFileSync(join(ROOT, 'Caddyfile'), 'utf8');

  test('the wsproxy environment passes the config schema', () => {
    assert.equal(config.port, Number(CONFIG_VARS.port.default));
    assert.ok(config.metricsPort !== null);
  });

  test('TRUSTED_PROXIES is Caddy alone: its fixed address on the compose network both services join', () => {
    assertTrustsCaddyOnly(compose, config, [svc]);
  });

  test('authentication and origins must be set in .env: no default turns them off', () => {
    assertRequiredSecurityVars(svc.environment);
  });

  test('raw tunnel ports are published; the HTTP port is reachable only through Caddy', () => {
    const range = `${config.tunnelPortMin}-${config.tunnelPortMax}`;
    assert.deepEqual(svc.ports, [`${range}:${range}`]);
    const caddyPorts: string[] = compose.services.caddy.ports;
    assert.ok(caddyPorts.includes('443:443') && caddyPorts.includes('80:80'));
  });

  test('stop_grace_period outlasts the drain', () => {
    assert.ok(durationMs(svc.stop_grace_period) > config.shutdownTimeoutMs + 1000);
  });

  test('Caddy proxies both hosts to the service port; the wildcard uses the DNS challenge', () => {
    assert.ok(caddyfile.includes(`reverse_proxy ${'wsproxy'}:${config.port}`));
    assert.match(caddyfile, /^\{\$PROXY_DOMAIN:proxy\.example\.com\} \{/m);
    const wildcard = /^\*\.\{\$TUNNEL_DOMAIN:([^}]+)\} \{([\s\S]*?)^\}/m.exec(caddyfile);
    assert.ok(wildcard, 'wildcard tunnel site');
    assert.equal(wildcard[1], config.tunnelDomain);
    assert.match(wildcard[2], /tls \{\s*dns \w+/);
    const caddyBuild = compose.services.caddy.build;
    assert.ok(existsSync(join(ROOT, caddyBuild, 'Dockerfile')));
    assert.match(readFileSync(join(ROOT, caddyBuild, 'Dockerfile'), 'utf8'), /xcaddy build --with github\.com\/caddy-dns\//);
  });
});

/** TRUSTED_PROXIES names Caddy's fixed address, inside the network's subnet, that every wsproxy service joins. */
function assertTrustsCaddyOnly(compose: Doc, config: WsproxyConfig, services: Doc[]): void {
  const [netName] = Object.keys(compose.networks);
  const subnet: string = compose.networks[netName].ipam.config[0].subnet;
  const caddyAddress: string = compose.services.caddy.networks[netName]?.ipv4_address;
  assert.ok(caddyAddress, 'Caddy has a fixed address');
  assert.deepEqual(config.trustedProxies, [`${caddyAddress}/32`]);
  const prefix = subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  assert.ok(subnet.endsWith('/24') && caddyAddress.startsWith(prefix + '.'), `${caddyAddress} in ${subnet}`);
  assert.notEqual(caddyAddress, `${prefix}.1`, 'not the gateway');
  for (const service of services) assert.ok(netName in service.networks);
}

/** CLERK_JWKS_URL and ALLOWED_ORIGINS use `${VAR?message}`: compose stops when .env lacks them. */
function assertRequiredSecurityVars(environment: Record<string, string>): void {
  for (const name of ['CLERK_JWKS_URL', 'ALLOWED_ORIGINS']) {
    assert.match(String(environment[name]), new RegExp(`^\\$\\{${name}:?\\?.+\\}$`), `${name} is required, with a message`);
  }
}

describe('docker-compose.cluster.yml and Caddyfile.cluster', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.cluster.yml'), 'utf8'), { merge: true }) as Doc;
  const replicas = ['wsproxy-1', 'wsproxy-2', 'wsproxy-3'].map((name) => compose.services[name] as Doc);
  const caddyfile = readFileSync(join(ROOT, 'Caddyfile.cluster'), 'utf8');

  test('every replica\'s environment passes the config schema, in cluster mode', () => {
    for (const r of replicas) {
      const env: Record<string, string> = Object.fromEntries(Object.entries(r.environment).map(([k, v]) => [k, composeDefault(String(v))]));
      const config = parseConfig(env);
      assert.ok(config.redisUrl, 'REDIS_URL');
      assertTrustsCaddyOnly(compose, config, [r]);
      assertRequiredSecurityVars(r.environment);
    }
  });

  test('Redis runs one pinned release (major.minor.patch), the same here as in the Kubernetes cluster overlay', () => {
    // A moving tag (redis:7-alpine) gives each host whatever 7.x it pulled first, and a new minor on the next pull.
    const k8sRedis = loadDir(join(ROOT, 'deploy/kubernetes/cluster'))
      .filter((d) => d.spec?.template?.spec)
      .flatMap((d) => d.spec.template.spec.containers as Doc[])
      .filter((c) => c.name === 'redis');
    assert.equal(k8sRedis.length, 1, 'one redis container in deploy/kubernetes/cluster');
    for (const image of [compose.services.redis.image as string, k8sRedis[0].image as string]) {
      const [name, tag] = splitImage(image);
      assert.equal(name, 'redis');
      assert.ok(tag !== null && (/^@sha256:[0-9a-f]{64}$/.test(tag) || /^\d+\.\d+\.\d+(-alpine[\d.]*)?$/.test(tag)), `${image}: pinned to a release`);
    }
    assert.equal(compose.services.redis.image, k8sRedis[0].image, 'Compose and Kubernetes run the same Redis');
  });

  test('Caddy pins browsers to a replica with a cookie on the proxy host only', () => {
    const site = (re: RegExp): string => {
      const m = re.exec(caddyfile);
      assert.ok(m, String(re));
      return m[1]!;
    };
    const proxy = site(/^\{\$PROXY_DOMAIN:[^}]+\} \{([\s\S]*?)^\}/m);
    const tunnels = site(/^\*\.\{\$TUNNEL_DOMAIN:[^}]+\} \{([\s\S]*?)^\}/m);
    assert.match(proxy, /^\s*import to_wsproxy cookie\s*$/m);
    assert.match(proxy, /@cluster path \/_cluster\/\*\s*\n\s*respond @cluster 404/);
    assert.match(tunnels, /^\s*import to_wsproxy least_conn\s*$/m);
    assert.match(caddyfile, /^\s*lb_policy \{args\[0\]\}\s*$/m);
  });
});

/** The kustomization directories, and what each renders to with `kubectl kustomize` (null without kubectl). */
const KUSTOMIZATIONS = ['deploy/kubernetes', 'deploy/kubernetes/base', 'deploy/kubernetes/cluster'];
const HAVE_KUBECTL = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;

function kustomize(dir: string): Doc[] {
  const r = spawnSync('kubectl', ['kustomize', join(ROOT, dir)], { encoding: 'utf8' });
  assert.equal(r.status, 0, `kubectl kustomize ${dir}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Doc).filter(Boolean);
}

describe('kustomizations', () => {
  test('no overlay sits inside a directory it builds on (kustomize refuses the cycle), and every resource exists', () => {
    for (const dir of KUSTOMIZATIONS) {
      const k = parse(readFileSync(join(ROOT, dir, 'kustomization.yaml'), 'utf8')) as Doc;
      for (const r of [...(k.resources ?? []), ...(k.patches ?? []).map((p: Doc) => p.path)]) {
        const target = resolve(ROOT, dir, r);
        assert.ok(existsSync(target), `${dir}: ${r} exists`);
        if (existsSync(join(target, 'kustomization.yaml'))) {
          assert.ok(relative(target, resolve(ROOT, dir)).startsWith('..'), `${dir} is inside its base ${r}`);
        }
      }
    }
  });

  test('kubectl kustomize renders each; the cluster overlay gives the proxy host its own Ingress', { skip: HAVE_KUBECTL ? false : 'kubectl not installed' }, () => {
    const single = kustomize('deploy/kubernetes');
    assert.deepEqual(single.map((d) => `${d.kind}/${d.metadata.name}`).sort(), kustomize('deploy/kubernetes/base').map((d) => `${d.kind}/${d.metadata.name}`).sort());
    const cluster = kustomize('deploy/kubernetes/cluster');
    const deployment = one(cluster, 'Deployment', 'wsproxy');
    assert.equal(deployment.spec.replicas, 3);
    const pinned = (parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8')) as Doc).images[0];
    for (const rendered of [single, cluster]) {
      assert.equal(one(rendered, 'Deployment', 'wsproxy').spec.template.spec.containers[0].image, `${pinned.newName}:${pinned.newTag}`, 'the image images: sets');
    }
    const env: Doc[] = deployment.spec.template.spec.containers[0].env;
    const names = env.map((e) => e.name);
    assert.ok(names.indexOf('POD_IP') < names.indexOf('CLUSTER_ADVERTISE_URL'), 'POD_IP defined before its use');
    assert.ok(names.indexOf('REDIS_PASSWORD') < names.indexOf('REDIS_URL'), 'REDIS_PASSWORD defined before its use');

    const tunnels = one(cluster, 'Ingress', 'wsproxy');
    assert.deepEqual(tunnels.spec.rules.map((r: Doc) => r.host), ['*.tunnel.example.com'], 'tunnel hosts only');
    assert.equal(tunnels.metadata.annotations['nginx.ingress.kubernetes.io/affinity'], undefined, 'no cookie for tunnel visitors');
    const relay = one(cluster, 'Ingress', 'wsproxy-relay');
    assert.deepEqual(relay.spec.rules.map((r: Doc) => r.host), ['proxy.example.com']);
    assert.equal(relay.metadata.annotations['nginx.ingress.kubernetes.io/affinity'], 'cookie');
    const paths = relay.spec.rules[0].http.paths;
    const blocked = paths.find((p: Doc) => p.path === '/_cluster');
    assert.ok(blocked, '/_cluster has its own path');
    const noRoute = one(cluster, 'Service', blocked.backend.service.name);
    assert.equal(noRoute.spec.selector, undefined, 'a Service with no selector has no endpoints');
    assert.equal(paths.find((p: Doc) => p.path === '/').backend.service.name, 'wsproxy');
    for (const k of ['proxy-read-timeout', 'proxy-send-timeout']) assert.ok(Number(relay.metadata.annotations[`nginx.ingress.kubernetes.io/${k}`]) >= 3600, k);
  });
});

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly stage: number;
}

function dockerfile(): Instruction[] {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const out: Instruction[] = [];
  let stage = -1;
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === 'FROM') stage++;
    out.push({ op: m[1], args: m[2].trim(), stage });
  }
  return out;
}

function dockerfileUser(): { uid: number } {
  const users = dockerfile().filter((i) => i.op === 'USER');
  const last = users[users.length - 1];
  assert.ok(last, 'USER set');
  const uid = Number(last.args.split(':')[0]);
  assert.ok(Number.isInteger(uid), 'numeric USER (lets Kubernetes verify runAsNonRoot)');
  return { uid };
}

describe('Dockerfile and .dockerignore', () => {
  const ins = dockerfile();
  const froms = ins.filter((i) => i.op === 'FROM');
  const last = froms.length - 1;
  const runtime = ins.filter((i) => i.stage === last);

  test('multi-stage: build with the toolchain, run on a small Node 22 image', () => {
    assert.ok(froms.length >= 2);
    assert.match(froms[last].args, /^(gcr\.io\/distroless\/nodejs22-debian12|node:22-alpine)\b/);
    assert.ok(ins.some((i) => i.op === 'RUN' && i.stage < last && /npm run build/.test(i.args)));
    assert.ok(ins.some((i) => i.op === 'RUN' && i.stage < last && /npm ci --omit=dev/.test(i.args)));
  });

  test('the runtime stage holds package.json, production node_modules and dist only', () => {
    const copied = runtime
      .filter((i) => i.op === 'COPY')
      .map((i) => i.args.replace(/--from=\S+\s+/, '').split(/\s+/)[0].replace(/^\/app\//, ''));
    assert.deepEqual(copied.sort(), ['dist', 'node_modules', 'package.json']);
    assert.ok(!runtime.some((i) => i.op === 'RUN'), 'nothing installed or run in the runtime stage');
  });

  test('non-root, the service and tunnel ports exposed, SIGTERM, exec-form node as PID 1', () => {
    assert.ok(dockerfileUser().uid > 0);
    const exposed = runtime.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
    assert.ok(exposed.includes(CONFIG_VARS.port.default));
    assert.ok(exposed.includes(`${CONFIG_VARS.tunnelPortMin.default}-${CONFIG_VARS.tunnelPortMax.default}`));
    assert.deepEqual(runtime.filter((i) => i.op === 'STOPSIGNAL').map((i) => i.args), ['SIGTERM']);
    const entrypoint = runtime.find((i) => i.op === 'ENTRYPOINT');
    const cmd = runtime.find((i) => i.op === 'CMD');
    assert.ok(cmd, 'CMD');
    const argv = [...(entrypoint ? (JSON.parse(entrypoint.args) as string[]) : []), ...(JSON.parse(cmd.args) as string[])];
    assert.match(argv[0], /(^|\/)node(js)?$|\/nodejs\/bin\/node$/);
    assert.deepEqual(argv.slice(1), ['dist/main.js']);
    assert.ok(!argv.some((a) => /(^|\/)(ba)?sh$/.test(a)), 'no shell');
  });

  test('.dockerignore keeps the context to what the build needs', () => {
    const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    assert.equal(lines[0], '*', 'allowlist');
    const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    assert.deepEqual(allowed.sort(), ['package-lock.json', 'package.json', 'src', 'tsconfig.build.json', 'tsconfig.json']);
    for (const i of ins.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
      const sources = i.args.split(/\s+/).slice(0, -1);
      for (const s of sources) assert.ok(allowed.includes(s.replace(/\/$/, '')), `COPY ${s} is in the build context`);
    }
  });
});
