import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseClusterTunnelRecord } from './cluster-tunnel-state.js';

const base = { subdomain: 'abc0000000000101', user: 'u', clientIp: '127.0.0.1', createdAt: 1, replica: 'feedfeedfeedfeed' };

describe('parseClusterTunnelRecord', () => {
  it('reads a record whose owner URL is http(s), or empty (owner not reachable yet)', () => {
    for (const url of ['http://127.0.0.1:8080', 'https://wsproxy-1.internal', 'http://[::1]:9000', '']) {
      assert.deepEqual(parseClusterTunnelRecord(JSON.stringify({ ...base, url })), { ...base, url }, url);
    }
  });

  it('refuses anything the replica could not act on without throwing later', () => {
    const refused = [
      'not json',
      'null',
      '42',
      '"text"',
      '[]',
      JSON.stringify({ ...base }),
      JSON.stringify({ ...base, url: 'not a url' }),
      JSON.stringify({ ...base, url: 123 }),
      JSON.stringify({ ...base, url: 'ftp://127.0.0.1/' }),
      JSON.stringify({ ...base, url: 'file:///etc/passwd' }),
      JSON.stringify({ ...base, url: 'http://' }),
      JSON.stringify({ ...base, url: 'http://x', subdomain: 7 }),
      JSON.stringify({ ...base, url: 'http://x', user: null }),
      JSON.stringify({ ...base, url: 'http://x', replica: undefined }),
    ];
    for (const json of refused) assert.equal(parseClusterTunnelRecord(json), null, json);
  });
});
