import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RefusalReason } from '../common/refusal.js';
import { REFUSAL_LABELS, refusalLabel, statusClass } from './refusal-label.js';

test('every refusal kind maps to one of the documented labels', () => {
  const kinds: RefusalReason[] = [
    'bad_request',
    'origin',
    'auth',
    'auth_unavailable',
    'limit',
    'blocked',
    'dial',
    'draining',
    'not_found',
    'cluster',
    'capacity',
    'resources',
    'internal',
  ];
  for (const k of kinds) assert.ok((REFUSAL_LABELS as readonly string[]).includes(refusalLabel(k)), k);
  assert.equal(refusalLabel('auth_unavailable'), 'auth');
  assert.equal(refusalLabel('something_new'), 'other');
  assert.equal(refusalLabel('__proto__'), 'other');
});

test('status classes', () => {
  assert.equal(statusClass(200), '2xx');
  assert.equal(statusClass(404), '4xx');
  assert.equal(statusClass(599), '5xx');
  assert.equal(statusClass(101), '1xx');
  assert.equal(statusClass(0), 'other');
  assert.equal(statusClass(600), 'other');
});
