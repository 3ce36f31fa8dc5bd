import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { parseConfig } from '../config/config.schema.js';
import { AuthService } from '../auth/auth.service.js';
import { JwksService } from '../auth/jwks.service.js';
import { isRefusal } from '../common/refusal.js';
import { AdmissionService } from '../upgrade/admission.service.js';
import type { UpgradeContext } from '../upgrade/upgrade-route.js';
import { InMemoryCounterStore } from './in-memory-counter.store.js';
import { LimitsService } from './limits.service.js';

function limits(env: Record<string, string>): { service: LimitsService; store: InMemoryCounterStore; config: ReturnType<typeof parseConfig> } {
  const config = parseConfig(env);
  const store = new InMemoryCounterStore();
  return { service: new LimitsService(config, store), store, config };
}

const refused = (status: number) => (err: unknown) => isRefusal(err) && err.status === status;

describe('LimitsService', () => {
  it('counts a lease released twice once: a second release frees nobody else\'s slot', async () => {
    const { service } = limits({ MAX_CONNS_PER_IP: '2' });
    const a = await service.acquire('192.0.2.1', 'u1');
    await service.acquire('192.0.2.1', 'u2');
    a.release();
    a.release();
    await service.acquire('192.0.2.1', 'u3');
    await assert.rejects(service.acquire('192.0.2.1', 'u4'), refused(429));
  });
});

describe('AdmissionService slots', () => {
  it('gives the slot back when the client went away while it was being taken', async () => {
    const { service, config } = limits({ MAX_CONNS_PER_IP: '1' });
    const admission = new AdmissionService(config, new AuthService(config, new JwksService(config)), service);
    const ctx = (aborted: boolean): UpgradeContext =>
      ({ req: { headers: {} } as IncomingMessage, query: new URLSearchParams(), clientIp: '192.0.2.9', signal: { aborted } }) as unknown as UpgradeContext;
    await assert.rejects(admission.admitClient(ctx(true)), (err: unknown) => isRefusal(err) && err.status === 400 && err.reason === 'client went away');
    const admitted = await admission.admitClient(ctx(false));
    admitted.lease.release();
  });
});
