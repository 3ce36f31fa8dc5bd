import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../config/config.schema.js';
import { isRefusal } from '../common/refusal.js';
import { InMemoryCounterStore } from './in-memory-counter.store.js';
import { LimitsService } from './limits.service.js';

function limits(env: Record<string, string>): LimitsService {
  return new LimitsService(parseConfig(env), new InMemoryCounterStore());
}

const refused = (status: number) => (err: unknown) => isRefusal(err) && err.status === status;

describe('LimitsService', () => {
  it('counts a lease released twice once: a second release frees nobody else\'s slot', async () => {
    const service = limits({ MAX_CONNS_PER_IP: '2' });
    const a = await service.acquire('192.0.2.1', 'u1');
    await service.acquire('192.0.2.1', 'u2');
    a.release();
    a.release();
    await service.acquire('192.0.2.1', 'u3');
    await assert.rejects(service.acquire('192.0.2.1', 'u4'), refused(429));
  });

  it('MAX_CONNECTIONS: refuses a slot beyond it with 503, gives one back once however often released, and with the lease that carries it', async () => {
    const service = limits({ MAX_CONNECTIONS: '2' });
    const a = service.takeSlot();
    const b = service.takeSlot();
    assert.throws(() => service.takeSlot(), (err: unknown) => refused(503)(err) && (err as Error).message === 'proxy at capacity');
    a();
    a();
    assert.equal(service.slotsInUse, 1);
    const lease = await service.acquire('192.0.2.1', 'u1', service.takeSlot());
    assert.throws(() => service.takeSlot(), refused(503));
    lease.release();
    lease.release();
    assert.equal(service.slotsInUse, 1);
    b();
    assert.equal(service.slotsInUse, 0);
  });

  it('with authentication off counts per IP only: every client is user anonymous, so a per-user limit would cap the service', async () => {
    const service = limits({ MAX_CONNS_PER_IP: '2', MAX_CONNS_PER_USER: '1' });
    await service.acquire('192.0.2.1', 'anonymous');
    await service.acquire('192.0.2.2', 'anonymous');
    await service.acquire('192.0.2.1', 'anonymous');
    await assert.rejects(service.acquire('192.0.2.1', 'anonymous'), refused(429));
  });

  it('with authentication on counts per user too', async () => {
    const service = limits({ CLERK_JWKS_URL: 'https://issuer.example/.well-known/jwks.json', MAX_CONNS_PER_IP: '10', MAX_CONNS_PER_USER: '1' });
    await service.acquire('192.0.2.1', 'alice');
    await assert.rejects(service.acquire('192.0.2.2', 'alice'), (err: unknown) => refused(429)(err) && (err as Error).message.includes('user'));
    await service.acquire('192.0.2.2', 'bob');
  });
});
