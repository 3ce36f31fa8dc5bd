import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { parseConfig } from '../config/config.schema.js';
import { AuthService } from '../auth/auth.service.js';
import { JwksService } from '../auth/jwks.service.js';
import { isRefusal } from '../common/refusal.js';
import { InMemoryCounterStore } from '../limits/in-memory-counter.store.js';
import { LimitsService } from '../limits/limits.service.js';
import { AdmissionService } from './admission.service.js';
import type { UpgradeContext } from './upgrade-route.js';

const refused = (status: number) => (err: unknown) => isRefusal(err) && err.status === status;

function admissionFor(env: Record<string, string>): AdmissionService {
  const config = parseConfig(env);
  return new AdmissionService(config, new AuthService(config, new JwksService(config)), new LimitsService(config, new InMemoryCounterStore()));
}

const context = (headers: Record<string, string>, aborted = false): UpgradeContext =>
  ({
    req: { headers } as IncomingMessage,
    query: new URLSearchParams(),
    clientIp: '192.0.2.9',
    signal: aborted ? AbortSignal.abort() : new AbortController().signal,
  }) as unknown as UpgradeContext;

describe('AdmissionService', () => {
  it('gives the slot back when the client went away while it was being taken', async () => {
    const admission = admissionFor({ MAX_CONNS_PER_IP: '1' });
    await assert.rejects(admission.admitClient(context({}, true)), (err: unknown) => isRefusal(err) && err.status === 400 && err.reason === 'client went away');
    const admitted = await admission.admitClient(context({}));
    admitted.lease.release();
  });

  it('takes a MAX_CONNECTIONS slot before authentication and gives it back on every refusal', async () => {
    const admission = admissionFor({ CLERK_JWKS_URL: 'http://127.0.0.1:9/jwks.json', ALLOWED_ORIGINS: 'https://app.example.com', MAX_CONNECTIONS: '1' });
    // Refused by origin, by authentication, and gone before authentication: each gives its slot back, or the next would be a 503.
    await assert.rejects(admission.admitClient(context({ origin: 'https://evil.example.net' })), refused(403));
    await assert.rejects(admission.admitClient(context({})), refused(401));
    await assert.rejects(admission.admitClient(context({}, true)), refused(400));
    await assert.rejects(admission.identify(context({})), refused(401));
    await assert.rejects(admission.admitClient(context({})), refused(401));
  });

  it('refuses 503 at capacity, before authentication, and admits again once a lease is released', async () => {
    const admission = admissionFor({ MAX_CONNECTIONS: '1' });
    const first = await admission.admitClient(context({}));
    await assert.rejects(admission.admitClient(context({})), (err: unknown) => isRefusal(err) && err.status === 503 && err.kind === 'capacity');
    await assert.rejects(admission.identify(context({})), refused(503));
    first.lease.release();
    (await admission.admitClient(context({}))).lease.release();
    await admission.identify(context({}));
    (await admission.admitClient(context({}))).lease.release();
  });

  it('checks the origin before authentication: a cross-origin request without a token is a 403, not a 401', async () => {
    const admission = admissionFor({ CLERK_JWKS_URL: 'http://127.0.0.1:9/jwks.json', ALLOWED_ORIGINS: 'https://app.example.com' });
    await assert.rejects(admission.admitClient(context({ origin: 'https://evil.example.net' })), refused(403));
    await assert.rejects(admission.admitClient(context({ origin: 'https://app.example.com' })), refused(401));
  });
});
