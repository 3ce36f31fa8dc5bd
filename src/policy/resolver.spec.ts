import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { promises as dns } from 'node:dns';
import { ResolveTimeoutError, TargetResolver, withinResolveTimeout } from './resolver.js';

// Resolution only; nothing is dialled. `localhost` resolves from /etc/hosts.

describe('TargetResolver', () => {
  it('resolves localhost to loopback addresses', async () => {
    const found = await new TargetResolver().lookup('localhost');
    assert.ok(found.length >= 1);
    for (const a of found) assert.ok(a === '::1' || a.startsWith('127.'), a);
  });

  it('asks the system resolver for every address, in its order', async () => {
    const lookup = mock.method(dns, 'lookup', async () => [
      { address: '2001:db8::1', family: 6 },
      { address: '192.0.2.1', family: 4 },
    ]);
    try {
      const found = await new TargetResolver().lookup('svc.example');
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
      await assert.rejects(new TargetResolver().lookup('nx.example'), { code: 'ENOTFOUND' });
    } finally {
      lookup.mock.restore();
    }
  });

  it('settles when getaddrinfo does: it has no timeout of its own', async () => {
    let answer!: () => void;
    const lookup = mock.method(dns, 'lookup', () => new Promise((resolve) => (answer = () => resolve([{ address: '192.0.2.1', family: 4 }]))));
    try {
      const found = new TargetResolver().lookup('slow.example');
      answer();
      assert.deepEqual(await found, ['192.0.2.1']);
    } finally {
      lookup.mock.restore();
    }
  });
});

describe('withinResolveTimeout', () => {
  it('gives up after the timeout with ResolveTimeoutError', async () => {
    await assert.rejects(withinResolveTimeout(new Promise(() => undefined), 'slow.example', 100), ResolveTimeoutError);
  });

  it('passes the lookup through when it settles first', async () => {
    assert.deepEqual(await withinResolveTimeout(Promise.resolve(['192.0.2.1']), 'svc.example', 100), ['192.0.2.1']);
  });
});
