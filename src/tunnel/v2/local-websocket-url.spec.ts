import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { localWebSocketUrl } from './node-services.js';

describe('localWebSocketUrl', () => {
  const target = { host: '127.0.0.1', port: 3000 };

  it('puts an origin-form path on the configured service', () => {
    assert.equal(localWebSocketUrl(target, '/chat?room=1')?.href, 'ws://127.0.0.1:3000/chat?room=1');
    assert.equal(localWebSocketUrl(target, '/a@b:1/')?.host, '127.0.0.1:3000');
    assert.equal(localWebSocketUrl({ host: '::1', port: 3000 }, '/')?.href, 'ws://[::1]:3000/');
  });

  it('refuses a path that would move the connection to another host (a hostile proxy cannot reach other local services)', () => {
    for (const path of ['@127.0.0.2:9/', '//127.0.0.2:9/', 'x', '', '\\\\127.0.0.2/', ':9@127.0.0.2/']) {
      assert.equal(localWebSocketUrl(target, path), null, JSON.stringify(path));
    }
  });
});
