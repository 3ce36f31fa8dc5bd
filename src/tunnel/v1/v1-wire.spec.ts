import { constants } from 'node:buffer';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { V1_MAX_BODY_BYTES, v1MaxMessageBytes } from './v1-limits.js';

const MiB = 1024 * 1024;

describe('v1 message limits', () => {
  it('fit a whole body of the configured size, base64-encoded, plus 1 MiB', () => {
    assert.equal(v1MaxMessageBytes(10 * MiB), Math.ceil((10 * MiB) / 3) * 4 + MiB);
    assert.equal(v1MaxMessageBytes(0), MiB);
  });

  it('stay below the longest string V8 can make, whatever TUNNEL_MAX_BODY_BYTES allows', () => {
    // A v1 message is decoded into one string and its body base64-encoded into another.
    const most = v1MaxMessageBytes(1024 * MiB);
    assert.equal(most, v1MaxMessageBytes(V1_MAX_BODY_BYTES), 'capped at V1_MAX_BODY_BYTES');
    assert.ok(most < constants.MAX_STRING_LENGTH, `${most} >= ${constants.MAX_STRING_LENGTH}`);
    assert.ok(Math.ceil(V1_MAX_BODY_BYTES / 3) * 4 + 4096 < constants.MAX_STRING_LENGTH, 'an http_request of the largest body is a string V8 can hold');
  });
});
