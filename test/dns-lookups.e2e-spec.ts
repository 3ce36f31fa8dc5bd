import { after, before, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { promises as dns } from 'node:dns';
import { WebSocket } from 'ws';
import { LimitsService } from '../src/limits/limits.service.js';
import { TargetPolicyService } from '../src/policy/target-policy.service.js';
import { startApp, type TestApp } from './support/app.js';
import { echoTarget, type TestTarget } from './support/targets.js';
import { closed, expectCloseRefusal, expectRefusal, openWs, receiveBytes } from './support/ws-client.js';
import { waitFor } from './support/wait.js';

// getaddrinfo cannot be steered here, so dns.lookup (the resolver's side effect) is replaced:
// names under .hang.test answer only when released, names under .held.test resolve to 127.0.0.1
// when released, names under .nx.test do not exist, anything else as usual. Every client is a loopback address; only loopback is dialled.

const A = '127.0.0.1';
const B = '127.0.0.2';
const C = '127.0.0.3';

/** The status and `Retry-After` of a refused handshake. */
function refusalHeaders(url: string, localAddress: string): Promise<{ status: number | undefined; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { localAddress, perMessageDeflate: false });
    ws.once('unexpected-response', (req, res) => {
      resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'] });
      req.destroy();
    });
    ws.once('open', () => {
      ws.terminate();
      reject(new Error(`expected ${url} to be refused, but it opened`));
    });
    ws.on('error', () => undefined);
  });
}

describe('name lookups in flight (DNS_MAX_LOOKUPS_PER_IP, DNS_MAX_LOOKUPS)', () => {
  let app: TestApp;
  let echo: TestTarget;
  let policy: TargetPolicyService;
  const held = new Map<string, () => void>();
  const calls: string[] = [];
  const realLookup = dns.lookup.bind(dns);
  const lookup = mock.method(dns, 'lookup', (name: string, options: object) => {
    calls.push(name);
    if (name.endsWith('.hang.test')) return new Promise((_, reject) => held.set(name, () => reject(Object.assign(new Error('EAI_AGAIN'), { code: 'EAI_AGAIN' }))));
    if (name.endsWith('.held.test')) return new Promise((resolve) => held.set(name, () => resolve([{ address: '127.0.0.1', family: 4 }])));
    if (name === 'echo.test') return Promise.resolve([{ address: '127.0.0.1', family: 4 }]);
    if (name.endsWith('.nx.test')) return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' }));
    return realLookup(name, options as { all: true });
  });
  const release = (name: string): void => held.get(name)!();

  before(async () => {
    app = await startApp({ MAX_CONNS_PER_IP: '20', DNS_TIMEOUT_MS: '100', DNS_MAX_LOOKUPS_PER_IP: '2', DNS_MAX_LOOKUPS: '3' });
    policy = app.app.get(TargetPolicyService);
    echo = await echoTarget();
  });
  after(async () => {
    lookup.mock.restore();
    for (const settle of held.values()) settle();
    await app.close();
    await echo.close();
  });

  const url = (host: string): string => `${app.wsUrl}/relay?host=${host}&port=${echo.port}`;

  async function slotsInUse(): Promise<number> {
    const snap = await app.app.get(LimitsService).snapshot();
    return Object.values(snap.perIp).reduce((a, b) => a + b, 0) + app.app.get(LimitsService).slotsInUse;
  }

  async function echoes(ws: WebSocket): Promise<void> {
    const got = receiveBytes(ws, 5);
    ws.send(Buffer.from('hello'));
    assert.equal((await got).toString(), 'hello');
    ws.close(1000);
    await closed(ws);
  }

  it('keeps counting lookups that outlast DNS_TIMEOUT_MS, refuses the next one from that IP 429 without starting it, and lets others through', async () => {
    for (const name of ['a.hang.test', 'b.hang.test']) {
      const r = await expectRefusal(url(name), { localAddress: A });
      assert.deepEqual([r.status, r.body], [504, 'name resolution timed out']);
    }
    await waitFor(async () => (await slotsInUse()) === 0, 5000, 'every limit slot back after the 504s');
    assert.equal(policy.lookupsInFlight(A), 2, 'both lookups still hold a resolver thread');

    const refused = await expectRefusal(url('c.hang.test'), { localAddress: A });
    assert.deepEqual([refused.status, refused.body], [429, 'too many name lookups from this IP']);
    assert.match(await (await fetch(`${app.baseUrl}/metrics`)).text(), /^wsproxy_admission_refusals_total\{reason="limit"\} 1$/m, 'the 429 counted as limit');
    assert.ok(!calls.includes('c.hang.test'), 'no lookup was started for it');

    await echoes(await openWs(url('echo.test'), { localAddress: B }));
    await echoes(await openWs(url('127.0.0.1'), { localAddress: A }));
    await waitFor(async () => (await slotsInUse()) === 0, 5000, 'every limit slot back');
  });

  it('refuses every client 503 with Retry-After once DNS_MAX_LOOKUPS are in flight; IP literals still pass', async () => {
    const r = await expectRefusal(url('d.hang.test'), { localAddress: B });
    assert.equal(r.status, 504);
    assert.equal(policy.lookupsInFlight(), 3);
    const refused = await expectRefusal(url('echo.test'), { localAddress: C });
    assert.deepEqual([refused.status, refused.body], [503, 'too many name lookups in progress']);
    assert.deepEqual(await refusalHeaders(url('echo.test'), C), { status: 503, retryAfter: '5' });
    const metrics = await (await fetch(`${app.baseUrl}/metrics`)).text();
    assert.match(metrics, /^wsproxy_admission_refusals_total\{reason="capacity"\} 2$/m, 'both 503s counted as capacity');
    await echoes(await openWs(url('127.0.0.1'), { localAddress: C }));

    for (const name of ['a.hang.test', 'b.hang.test', 'd.hang.test']) release(name);
    await waitFor(() => policy.lookupsInFlight() === 0, 5000, 'the lookups settled');
    await echoes(await openWs(url('echo.test'), { localAddress: A }));
    await echoes(await openWs(url('echo.test'), { localAddress: C }));
    await waitFor(async () => (await slotsInUse()) === 0, 5000, 'every limit slot back');
  });

  it('refuses a name the resolver does not find 502 name resolution failed (4502 with errors=close), and a failed lookup stops counting', async () => {
    // More failures from one address than DNS_MAX_LOOKUPS_PER_IP: each is a 502, never a 429.
    for (const name of ['a.nx.test', 'b.nx.test', 'c.nx.test']) {
      assert.deepEqual(await expectRefusal(url(name), { localAddress: A }), { status: 502, body: 'name resolution failed' }, name);
    }
    assert.deepEqual(await expectCloseRefusal(`${url('d.nx.test')}&errors=close`, { localAddress: A }), { code: 4502, reason: 'name resolution failed' });
    assert.equal(policy.lookupsInFlight(A), 0);
    await waitFor(async () => (await slotsInUse()) === 0, 5000, 'every limit slot back');
  });
});

describe('concurrent relays to one name', () => {
  it('share one lookup, from any client', async () => {
    let answer!: () => void;
    const names: string[] = [];
    const lookup = mock.method(dns, 'lookup', (name: string) => {
      names.push(name);
      return new Promise((resolve) => (answer = () => resolve([{ address: '127.0.0.1', family: 4 }])));
    });
    const app = await startApp({ MAX_CONNS_PER_IP: '20', DNS_MAX_LOOKUPS_PER_IP: '1', DNS_MAX_LOOKUPS: '1' });
    const echo = await echoTarget();
    const limits = app.app.get(LimitsService);
    const held = async (): Promise<number> => Object.values((await limits.snapshot()).perIp).reduce((a, b) => a + b, 0);
    try {
      const opening = [A, A, A, B, B, C].map((ip) => openWs(`${app.wsUrl}/relay?host=shared.test&port=${echo.port}`, { localAddress: ip }));
      // A lease is taken right before the lookup, in the same run of microtasks: six leases, six admissions waiting on it.
      await waitFor(async () => (await held()) === 6, 5000, 'six admissions at their lookup');
      assert.deepEqual(names, ['shared.test']);
      answer();
      for (const ws of await Promise.all(opening)) {
        const got = receiveBytes(ws, 5);
        ws.send(Buffer.from('hello'));
        assert.equal((await got).toString(), 'hello');
        ws.close(1000);
        await closed(ws);
      }
      assert.deepEqual(names, ['shared.test']);
      await waitFor(async () => (await held()) === 0 && limits.slotsInUse === 0, 5000, 'every limit slot back');
    } finally {
      lookup.mock.restore();
      await app.close();
      await echo.close();
    }
  });
});
