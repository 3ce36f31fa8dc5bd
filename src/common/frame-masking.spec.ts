import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { maskingFor } from './frame-masking.js';

const keyFor = (url: string): Buffer | null => {
  const { generateMask } = maskingFor(new URL(url));
  if (!generateMask) return null;
  const mask = Buffer.from([1, 2, 3, 4]);
  generateMask(mask);
  return mask;
};

describe('maskingFor', () => {
  it('uses an all-zero key on loopback only', () => {
    for (const url of ['ws://127.0.0.1:8080/tunnel', 'wss://127.0.0.1:8443/tunnel', 'ws://127.9.9.9/relay', 'ws://localhost:80/', 'ws://[::1]:8080/relay']) {
      assert.deepEqual(keyFor(url), Buffer.alloc(4), url);
    }
  });

  it('leaves ws its random keys to any other host, inside TLS too (a TLS-inspecting proxy reads the frames)', () => {
    for (const url of ['wss://proxy.example.com/tunnel', 'ws://proxy.example.com/tunnel', 'ws://10.0.0.1/relay', 'ws://[2001:db8::1]/relay', 'ws://127.0.0.1.example.com/', 'ws://localhost.example.com/']) {
      assert.equal(keyFor(url), null, url);
    }
  });
});
