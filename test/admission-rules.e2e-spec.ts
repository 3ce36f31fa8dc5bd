/**
 * What an extra admission rule (docs/extending.md) can throw, through the real
 * app: a refusal whose reason is too long for a close frame, and an error that
 * is not a refusal at all.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Refusal } from '../src/common/refusal.js';
import { AdmissionService } from '../src/upgrade/admission.service.js';
import { startApp, type TestApp } from './support/app.js';
import { echoTarget, type TestTarget } from './support/targets.js';
import { expectCloseRefusal, expectRefusal } from './support/ws-client.js';

const LONG_REASON = 'your account is suspended: ' + 'é'.repeat(200);

describe('admission rules that throw', () => {
  let app: TestApp;
  let target: TestTarget;

  before(async () => {
    target = await echoTarget();
    app = await startApp();
    app.app.get(AdmissionService).addRule(({ query }) => {
      if (query.get('rule') === 'long') throw new Refusal(403, LONG_REASON, 'auth');
      if (query.get('rule') === 'throw') throw new Error('rule broke');
    });
  });
  after(async () => {
    await app?.close();
    await target?.close();
  });

  async function refusalsLabelled(reason: string): Promise<number> {
    const text = await (await fetch(`${app.baseUrl}/metrics`)).text();
    const m = new RegExp(`^wsproxy_admission_refusals_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text);
    assert.ok(m, `series for ${reason} exposed`);
    return Number(m[1]);
  }

  test('with errors=close, a reason longer than a close frame holds is cut to 123 bytes, still a 4403', async () => {
    const { code, reason } = await expectCloseRefusal(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}&rule=long&errors=close`);
    assert.equal(code, 4403);
    assert.ok(Buffer.byteLength(reason) <= 123, `reason is ${Buffer.byteLength(reason)} bytes`);
    assert.ok(Buffer.byteLength(reason) >= 122, 'cut at the limit, not emptied');
    assert.ok(LONG_REASON.startsWith(reason), 'a prefix of the rule’s reason, on a character boundary');
  });

  test('the same refusal without errors=close is a 403 with the whole reason', async () => {
    const res = await expectRefusal(`${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}&rule=long`);
    assert.equal(res.status, 403);
    assert.equal(res.body.trim(), LONG_REASON);
  });

  test('a rule that throws something else is a 500 internal error (4500 with errors=close), counted as internal, not as a bad request', async () => {
    const internal = await refusalsLabelled('internal');
    const badRequest = await refusalsLabelled('bad_request');
    const url = `${app.wsUrl}/relay?host=127.0.0.1&port=${target.port}&rule=throw`;
    // The documented reason, never the error's own message.
    assert.deepEqual(await expectRefusal(url), { status: 500, body: 'internal error' });
    assert.deepEqual(await expectCloseRefusal(`${url}&errors=close`), { code: 4500, reason: 'internal error' });
    assert.equal(await refusalsLabelled('internal'), internal + 2);
    assert.equal(await refusalsLabelled('bad_request'), badRequest);
  });
});
