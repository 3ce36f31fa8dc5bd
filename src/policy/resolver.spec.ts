import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { promises as dns } from 'node:dns';
import { parseConfig } from '../config/config.schema.js';
import { ResolveTimeoutError, TargetResolver } from './resolver.js';

// Resolution only; nothing is dialled. `localhost` resolves from /etc/hosts.

describe('TargetResolver', () => {
  it('resolves localhost to loopback addresses', async () => {
    const found = await new TargetResolver(parseConfig({})).lookup('localhost');
    assert.ok(found.length >= 1);
    for (const a of found) assert.ok(a === '::1' || a.startsWith('127.'), a);
  });

  it('asks the system resolver for every address, in its order', async () => {
    const lookup = mock.method(dns, 'lookup', async () => [
      { address: '2001:db8::1', family: 6 },
      { address: '192.0.2.1', family: 4 },
    ]);
    try {
      const found = await new TargetResolver(parseConfig({})).lookup('svc.example');
      assert.deepEqual(found, ['2001:db8::1', '192.0.2.1']);
      assert.deepEqual(lookup.mock.calls[0].arguments, ['svc.example', { all: true, verbatim: true }]);
    } finally {
      lookup.mock.restore();
    }
  });

  it('passes resolver errors through', async () => {
    const lookup = mock.method(dns, 'lookup', async () => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND nx.example'), { code: 'ENOTFOUND' });
    });
    try {
      await assert.rejects(new TargetResolver(parseConfig({})).lookup('nx.example'), { code: 'ENOTFOUND' });
    } finally {
      lookup.mock.restore();
    }
  });

  it('gives up after DNS_TIMEOUT_MS with ResolveTimeoutError', async () => {
    const lookup = mock.method(dns, 'lookup', () => new Promise(() => undefined));
    try {
      await assert.rejects(new TargetResolver(parseConfig({ DNS_TIMEOUT_MS: '100' })).lookup('slow.example'), ResolveTimeoutError);
    } finally {
      lookup.mock.restore();
    }
  });
});
