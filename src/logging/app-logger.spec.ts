import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { NestPinoLogger } from './app-logger.js';

function capture(): { logger: NestPinoLogger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      out.push(chunk.toString());
      done();
    },
  });
  const logger = new NestPinoLogger(pino({ level: 'trace' }, sink));
  return { logger, lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('NestPinoLogger', () => {
  it('logs an error by name, code, message and stack only: not the input Node keeps on it', () => {
    const { logger, lines } = capture();
    let err: Error;
    try {
      new URL('http://x:99999/auth/whoami?token=SECRET-IN-INPUT');
      assert.fail('the URL parsed');
    } catch (e) {
      err = e as Error;
    }
    assert.equal((err as { input?: string }).input?.includes('SECRET-IN-INPUT'), true, 'Node keeps the input on the error');
    logger.error(err, 'ExceptionsHandler');
    const [line] = lines();
    assert.ok(line);
    assert.equal(JSON.stringify(line).includes('SECRET-IN-INPUT'), false);
    const logged = line.error as Record<string, unknown>;
    assert.equal(logged.type, 'TypeError');
    assert.equal(logged.code, 'ERR_INVALID_URL');
    assert.equal(logged.message, err.message);
    assert.match(String(logged.stack), /TypeError/);
    assert.equal(line.context, 'ExceptionsHandler');
  });

  it('keeps plain messages and object messages as they were', () => {
    const { logger, lines } = capture();
    logger.warn('plain words', 'Ctx');
    logger.log({ event: 'x', n: 1 }, 'Ctx');
    const [a, b] = lines();
    assert.equal(a!.msg, 'plain words');
    assert.equal(a!.context, 'Ctx');
    assert.equal(b!.event, 'x');
    assert.equal(b!.n, 1);
  });
});
