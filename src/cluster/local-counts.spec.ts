import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCounts } from './local-counts.js';

test('counts per IP and per user, dropping entries at zero', () => {
  const c = new LocalCounts();
  c.begin('1.1.1.1', 'alice');
  c.begin('1.1.1.1', 'bob');
  c.begin('2.2.2.2', 'alice');
  assert.deepEqual(c.snapshot(), { perIp: { '1.1.1.1': 2, '2.2.2.2': 1 }, perUser: { alice: 2, bob: 1 } });
  c.drop('2.2.2.2', 'alice');
  c.drop('9.9.9.9', 'nobody');
  assert.deepEqual(c.snapshot(), { perIp: { '1.1.1.1': 2 }, perUser: { alice: 1, bob: 1 } });
});

test('heartbeat arguments: a count then pairs, IPs first, then users', () => {
  const c = new LocalCounts();
  assert.deepEqual(c.heartbeatArgs(), ['0', '0']);
  c.begin('::1', 'u:1');
  c.begin('::1', 'u:2');
  assert.deepEqual(c.heartbeatArgs(), ['1', '::1', '2', '2', 'u:1', '1', 'u:2', '1']);
});
