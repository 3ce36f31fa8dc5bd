import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../config/config.schema.js';
import { DrainService } from './drain.service.js';

function drainService(shutdownTimeoutMs: number): DrainService {
  return new DrainService(parseConfig({ SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs) }));
}

describe('DrainService', () => {
  it('counts tracked connections; untracking twice removes one once', () => {
    const drain = drainService(1000);
    const a = drain.track({ shutdown: () => undefined });
    const b = drain.track({ shutdown: () => undefined });
    assert.equal(drain.liveCount, 2);
    a();
    a();
    assert.equal(drain.liveCount, 1);
    b();
    assert.equal(drain.liveCount, 0);
  });

  it('a drain ends as soon as the last live connection ends, without waiting for the timeout', async () => {
    const drain = drainService(60_000);
    const untrack = drain.track({ shutdown: () => assert.fail('not shut down: it ended by itself') });
    const started = Date.now();
    const done = drain.beforeApplicationShutdown();
    assert.equal(drain.draining, true);
    setTimeout(untrack, 50);
    await done;
    assert.ok(Date.now() - started < 5000);
  });

  it('ends at once the connections that only wait on their peers, once every live one is such, without waiting for the timeout', async () => {
    const drain = drainService(60_000);
    const shut: string[] = [];
    const track = (name: string, settled: () => boolean): void => {
      const untrack = drain.track({
        shutdown: () => {
          shut.push(name);
          setTimeout(untrack, 10);
        },
        settled,
      });
    };
    let bSettled = false;
    track('a', () => true);
    track('b', () => bSettled);
    // The drain's own timers do not hold the process open (the server does, in the service).
    const server = setInterval(() => undefined, 1000);
    const started = Date.now();
    const done = drain.beforeApplicationShutdown();
    await new Promise((r) => setTimeout(r, 600));
    assert.deepEqual(shut, [], 'one of them still has something to deliver');
    bSettled = true;
    await done;
    clearInterval(server);
    assert.ok(Date.now() - started < 5000);
    assert.deepEqual(shut.sort(), ['a', 'b']);
    assert.equal(drain.liveCount, 0);
  });

  it('waits for a connection that cannot say it is settled (a tunnel: no settled()), even when every other one is', async () => {
    const drain = drainService(60_000);
    const shut: string[] = [];
    const track = (name: string, settled?: () => boolean): (() => void) => {
      const untrack = drain.track({
        shutdown: () => {
          shut.push(name);
          setTimeout(untrack, 10);
        },
        settled,
      });
      return untrack;
    };
    track('relay', () => true);
    const tunnel = track('tunnel');
    const server = setInterval(() => undefined, 1000);
    const done = drain.beforeApplicationShutdown();
    await new Promise((r) => setTimeout(r, 600));
    assert.deepEqual(shut, [], 'the tunnel may still carry requests: nothing is ended before the timeout');
    tunnel();
    await done;
    clearInterval(server);
    assert.deepEqual(shut, ['relay']);
  });

  it('after the timeout, closes what is still live with 1001 and then waits for it', async () => {
    const drain = drainService(100);
    const closed: [number, string][] = [];
    let untrack: () => void = () => undefined;
    untrack = drain.track({
      shutdown: (code, reason) => {
        closed.push([code, reason]);
        setTimeout(untrack, 10);
      },
    });
    // The drain's own timer does not hold the process open (the server does, in the service).
    const server = setInterval(() => undefined, 1000);
    await drain.beforeApplicationShutdown();
    clearInterval(server);
    assert.deepEqual(closed, [[1001, 'server shutting down']]);
    assert.equal(drain.liveCount, 0);
  });

  it('terminates what a close frame did not end (a peer that never answers it), so its end is still seen', async () => {
    const drain = drainService(50);
    const calls: string[] = [];
    let untrack: () => void = () => undefined;
    untrack = drain.track({
      shutdown: () => calls.push('shutdown'),
      terminate: () => {
        calls.push('terminate');
        setTimeout(untrack, 10);
      },
    });
    const server = setInterval(() => undefined, 1000);
    await drain.beforeApplicationShutdown();
    clearInterval(server);
    assert.deepEqual(calls, ['shutdown', 'terminate']);
    assert.equal(drain.liveCount, 0);
  });
});
