import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { exhaustionRefusal } from './local-exhaustion.js';

describe('exhaustionRefusal', () => {
  it('refuses 503 for the proxy running out of descriptors, buffers, memory or local ports', () => {
    for (const code of ['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL']) {
      const refusal = exhaustionRefusal(code, 'testing');
      assert.deepEqual([refusal?.status, refusal?.reason, refusal?.kind], [503, 'proxy out of resources', 'resources'], code);
    }
  });

  it('leaves what the target or the network did to the caller', () => {
    for (const code of ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'ETIMEDOUT', undefined]) {
      assert.equal(exhaustionRefusal(code, 'testing'), null, String(code));
    }
  });
});
