import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { armMaxAge, longTimeout } from './max-age.js';

describe('longTimeout', () => {
  it('waits out a delay longer than one step in several steps', async () => {
    const started = Date.now();
    let firedAt = 0;
    longTimeout(() => (firedAt = Date.now()), 60, 25);
    await sleep(30);
    assert.equal(firedAt, 0, 'fired after the first step');
    // A chain of three timers: on a loaded machine it can run late, so it is awaited, not given a fixed window.
    for (let waited = 0; firedAt === 0 && waited < 5000; waited += 10) await sleep(10);
    assert.notEqual(firedAt, 0, 'never fired');
    assert.ok(firedAt - started >= 59, `fired after ${firedAt - started} ms`);
  });

  it('can be cancelled in any step', async () => {
    let fired = false;
    const cancel = longTimeout(() => (fired = true), 60, 25);
    await sleep(35);
    cancel();
    await sleep(60);
    assert.equal(fired, false);
  });
});

describe('armMaxAge', () => {
  it('does not fire a year-long MAX_CONNECTION_S at once (setTimeout alone fires anything past 24.8 days after 1 ms)', async () => {
    let fired = false;
    const cancel = armMaxAge(31_536_000, () => (fired = true));
    await sleep(50);
    cancel();
    assert.equal(fired, false);
  });

  it('arms nothing for 0 (unlimited)', async () => {
    let fired = false;
    armMaxAge(0, () => (fired = true))();
    await sleep(10);
    assert.equal(fired, false);
  });
});
