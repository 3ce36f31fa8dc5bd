import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLUSTER_AUTH_MAX_SKEW_MS, signClusterRequest, verifyClusterRequest } from './internal-auth.js';

const SECRET = 'a-cluster-secret-of-32-characters';
const NOW = 1_760_000_000_000;

test('a signed request verifies for its method and path', () => {
  const h = signClusterRequest(SECRET, 'GET', '/_cluster/ping', NOW);
  assert.equal(verifyClusterRequest(SECRET, h, 'GET', '/_cluster/ping', NOW), 'ok');
  assert.equal(verifyClusterRequest(SECRET, h, 'get', '/_cluster/ping', NOW + 1000), 'ok');
});

test('no header is missing; anything else wrong is invalid', () => {
  const h = signClusterRequest(SECRET, 'GET', '/_cluster/ping', NOW);
  assert.equal(verifyClusterRequest(SECRET, undefined, 'GET', '/_cluster/ping', NOW), 'missing');
  assert.equal(verifyClusterRequest(SECRET, '', 'GET', '/_cluster/ping', NOW), 'missing');
  assert.equal(verifyClusterRequest('another-secret-of-some-length', h, 'GET', '/_cluster/ping', NOW), 'invalid');
  assert.equal(verifyClusterRequest(SECRET, h, 'POST', '/_cluster/ping', NOW), 'invalid');
  assert.equal(verifyClusterRequest(SECRET, h, 'GET', '/_cluster/ping?x=1', NOW), 'invalid');
  assert.equal(verifyClusterRequest(SECRET, SECRET, 'GET', '/_cluster/ping', NOW), 'invalid');
  assert.equal(verifyClusterRequest(SECRET, [h, h], 'GET', '/_cluster/ping', NOW), 'invalid');
  assert.equal(verifyClusterRequest(SECRET, h.slice(0, -1), 'GET', '/_cluster/ping', NOW), 'invalid');
  assert.equal(verifyClusterRequest('', h, 'GET', '/_cluster/ping', NOW), 'invalid');
});

test('a signature outside the allowed clock skew is refused', () => {
  const h = signClusterRequest(SECRET, 'GET', '/_cluster/ping', NOW);
  assert.equal(verifyClusterRequest(SECRET, h, 'GET', '/_cluster/ping', NOW + CLUSTER_AUTH_MAX_SKEW_MS), 'ok');
  assert.equal(verifyClusterRequest(SECRET, h, 'GET', '/_cluster/ping', NOW + CLUSTER_AUTH_MAX_SKEW_MS + 1), 'invalid');
  assert.equal(verifyClusterRequest(SECRET, h, 'GET', '/_cluster/ping', NOW - CLUSTER_AUTH_MAX_SKEW_MS - 1), 'invalid');
});

test('requests of one second to one path share a signature, which still verifies; another path or second signs anew', () => {
  const a = signClusterRequest(SECRET, 'GET', '/_cluster/tunnels/x/http?path=%2F', NOW + 100);
  const b = signClusterRequest(SECRET, 'GET', '/_cluster/tunnels/x/http?path=%2F', NOW + 900);
  assert.equal(a, b);
  assert.equal(verifyClusterRequest(SECRET, b, 'GET', '/_cluster/tunnels/x/http?path=%2F', NOW + 900), 'ok');
  assert.notEqual(signClusterRequest(SECRET, 'GET', '/_cluster/tunnels/x/http?path=%2Fa', NOW + 900), a);
  const next = signClusterRequest(SECRET, 'GET', '/_cluster/tunnels/x/http?path=%2F', NOW + 1000);
  assert.notEqual(next, a);
  assert.equal(verifyClusterRequest(SECRET, next, 'GET', '/_cluster/tunnels/x/http?path=%2F', NOW + 1000), 'ok');
});
