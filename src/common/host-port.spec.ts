import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hostPort } from './host-port.js';

describe('hostPort', () => {
  it('brackets IPv6 literals only', () => {
    assert.equal(hostPort('127.0.0.1', 3000), '127.0.0.1:3000');
    assert.equal(hostPort('localhost', 80), 'localhost:80');
    assert.equal(hostPort('::1', 8080), '[::1]:8080');
    assert.equal(hostPort('fd00::2', 1), '[fd00::2]:1');
    assert.equal(hostPort('[::1]', 22), '[::1]:22', 'a literal already in brackets keeps one pair');
  });
});
