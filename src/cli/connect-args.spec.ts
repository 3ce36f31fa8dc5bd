import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { handshakeRequest, parseConnectArgs, UsageError, type ConnectOptions } from './connect-args.js';

const URL_ARG = 'ws://127.0.0.1:8080/relay?host=example.org&port=22';

function options(argv: string[], env: NodeJS.ProcessEnv = {}): ConnectOptions {
  const parsed = parseConnectArgs(argv, env);
  assert.equal(parsed.kind, 'run');
  return parsed.options;
}

describe('parseConnectArgs', () => {
  it('takes one URL; no token, query carrier, no origin by default', () => {
    const o = options([URL_ARG]);
    assert.equal(o.mode, 'plain');
    assert.equal(o.url.toString(), URL_ARG);
    assert.equal(o.token, null);
    assert.equal(o.tokenCarrier, 'query');
    assert.equal(o.origin, null);
  });

  it('reads the token from WSPROXY_TOKEN, and --token wins over it', () => {
    assert.equal(options([URL_ARG], { WSPROXY_TOKEN: 'env.jwt' }).token, 'env.jwt');
    assert.equal(options(['--token', 'arg.jwt', URL_ARG], { WSPROXY_TOKEN: 'env.jwt' }).token, 'arg.jwt');
    assert.equal(options([`--token=arg.jwt`, URL_ARG]).token, 'arg.jwt');
    assert.equal(options([URL_ARG], { WSPROXY_TOKEN: '' }).token, null);
  });

  it('takes a token written in the URL out of it, as the token (--token and WSPROXY_TOKEN win)', () => {
    const withToken = 'ws://127.0.0.1:8080/relay?host=h&port=22&token=url.jwt';
    const o = options([withToken]);
    assert.equal(o.token, 'url.jwt');
    assert.equal(o.url.searchParams.has('token'), false);
    assert.equal(o.url.searchParams.get('host'), 'h');
    assert.equal(options(['--resume', withToken]).token, 'url.jwt', 'the same for --resume');
    assert.equal(options([withToken], { WSPROXY_TOKEN: 'env.jwt' }).token, 'env.jwt');
    assert.equal(options(['--token', 'arg.jwt', withToken]).token, 'arg.jwt');
  });

  it('accepts --token-carrier header and --origin, before or after the URL', () => {
    const o = options([URL_ARG, '--token-carrier', 'header', '--origin=https://app.example.com']);
    assert.equal(o.tokenCarrier, 'header');
    assert.equal(o.origin, 'https://app.example.com');
  });

  it('answers help for -h and --help', () => {
    assert.deepEqual(parseConnectArgs(['-h'], {}), { kind: 'help' });
    assert.deepEqual(parseConnectArgs([URL_ARG, '--help'], {}), { kind: 'help' });
  });

  for (const [argv, message] of [
    [[], /missing URL/],
    [[URL_ARG, URL_ARG], /exactly one URL/],
    [['--bogus', URL_ARG], /unknown option --bogus/],
    [[URL_ARG, '--token'], /--token needs a value/],
    [['--token-carrier', 'cookie', URL_ARG], /--token-carrier must be one of query, header/],
    [['http://127.0.0.1/relay'], /ws:\/\/ or wss:\/\//],
    [['not a url?token=secret'], /not a valid URL/],
  ] as const) {
    it(`refuses ${JSON.stringify(argv)}`, () => {
      assert.throws(() => parseConnectArgs(argv, {}), (err: unknown) => err instanceof UsageError && message.test(err.message));
    });
  }

  it('never puts an option value in a usage error', () => {
    assert.throws(
      () => parseConnectArgs(['--tokn=s3cret', URL_ARG], {}),
      (err: unknown) => err instanceof Error && !err.message.includes('s3cret'),
    );
    // Typed without its space or `=`, the value is part of one unknown option.
    assert.throws(
      () => parseConnectArgs(['--tokeneyJhbGciOiJSUzI1NiJ9.s3cret', URL_ARG], {}),
      (err: unknown) => err instanceof UsageError && err.message === 'unknown option --token… (its value goes after a space or =)',
    );
    assert.throws(
      () => parseConnectArgs(['ftp://h/relay?token=s3cret'], {}),
      (err: unknown) => err instanceof Error && !err.message.includes('s3cret'),
    );
  });
});

describe('handshakeRequest', () => {
  it('sends no credentials without a token', () => {
    const r = handshakeRequest(options([URL_ARG]));
    assert.equal(r.url, URL_ARG);
    assert.deepEqual(r.headers, {});
    assert.equal(r.origin, undefined);
  });

  it('appends the token as a query parameter, replacing one already there', () => {
    const r = handshakeRequest(options([`${URL_ARG}&token=old`], { WSPROXY_TOKEN: 'a.b.c' }));
    const url = new URL(r.url);
    assert.deepEqual(url.searchParams.getAll('token'), ['a.b.c']);
    assert.equal(url.searchParams.get('host'), 'example.org');
    assert.equal(url.searchParams.get('port'), '22');
    assert.deepEqual(r.headers, {});
  });

  it('sends the token as Authorization: Bearer with the header carrier, leaving the URL alone', () => {
    const r = handshakeRequest(options(['--token-carrier', 'header', '--origin', 'https://a.example', URL_ARG], { WSPROXY_TOKEN: 'a.b.c' }));
    assert.equal(r.url, URL_ARG);
    assert.deepEqual(r.headers, { Authorization: 'Bearer a.b.c' });
    assert.equal(r.origin, 'https://a.example');
  });
});


describe('--max-message-bytes', () => {
  it('defaults to the proxy default MAX_MESSAGE_BYTES (4 MiB) and takes 1024..256 MiB', () => {
    assert.equal(options([URL_ARG]).maxMessageBytes, 4 * 1024 * 1024);
    assert.equal(options(['--max-message-bytes', '1048576', URL_ARG]).maxMessageBytes, 1048576);
    assert.equal(options([`--max-message-bytes=${256 * 1024 * 1024}`, URL_ARG]).maxMessageBytes, 256 * 1024 * 1024);
    for (const bad of ['0', '1023', '1e6', '-5', '', 'x', String(256 * 1024 * 1024 + 1)]) {
      assert.throws(() => parseConnectArgs(['--max-message-bytes', bad, URL_ARG], {}), /--max-message-bytes must be an integer from 1024 to 268435456/, bad);
    }
  });
});

describe('liveness settings', () => {
  it('default to a ping every 10 s and 65 s of silence, and take milliseconds from the environment', () => {
    assert.deepEqual(options([URL_ARG]).liveness, { pingEveryMs: 10_000, deadAfterMs: 65_000 });
    assert.deepEqual(options([URL_ARG], { WSPROXY_PING_EVERY_MS: '100', WSPROXY_DEAD_AFTER_MS: '1000' }).liveness, { pingEveryMs: 100, deadAfterMs: 1000 });
    assert.deepEqual(options([URL_ARG], { WSPROXY_DEAD_AFTER_MS: '' }).liveness.deadAfterMs, 65_000);
  });

  it('refuse a value that is not whole milliseconds from 10 to an hour', () => {
    for (const bad of ['0', '9', '1.5', '-100', '1e3', 'ten', '3600001']) {
      assert.throws(() => parseConnectArgs([URL_ARG], { WSPROXY_DEAD_AFTER_MS: bad }), (err: unknown) => err instanceof UsageError && /WSPROXY_DEAD_AFTER_MS must be an integer from 10 to 3600000/.test(err.message));
      assert.throws(() => parseConnectArgs([URL_ARG], { WSPROXY_PING_EVERY_MS: bad }), UsageError);
    }
  });
});
