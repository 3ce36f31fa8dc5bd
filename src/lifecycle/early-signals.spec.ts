import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { holdEarlySignals } from './early-signals.js';

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));

describe('holdEarlySignals', () => {
  it('holds a SIGTERM that comes before the real handlers, and raises it again once released', async () => {
    const release = holdEarlySignals();
    process.kill(process.pid, 'SIGTERM');
    await settle();
    // Still alive: the signal was taken. Now the app's own handler (exitOnSignals) is in place.
    const seen: string[] = [];
    const handler = (signal: string): void => void seen.push(signal);
    process.on('SIGTERM', handler);
    try {
      assert.deepEqual(seen, []);
      release();
      await settle();
      assert.deepEqual(seen, ['SIGTERM']);
      assert.equal(process.listenerCount('SIGINT'), 0, 'its own handlers are gone');
    } finally {
      process.off('SIGTERM', handler);
    }
  });

  it('raises nothing when no signal came', async () => {
    const release = holdEarlySignals();
    const seen: string[] = [];
    const handler = (signal: string): void => void seen.push(signal);
    process.on('SIGINT', handler);
    try {
      release();
      await settle();
      assert.deepEqual(seen, []);
    } finally {
      process.off('SIGINT', handler);
    }
  });
});
