#!/usr/bin/env node
/**
 * `wsproxy-connect URL`: bridges stdin/stdout to a wsproxy `/relay` WebSocket,
 * for use as an OpenSSH ProxyCommand:
 *
 *   ssh -o ProxyCommand='wsproxy-connect "ws://127.0.0.1:8080/relay?host=%h&port=%p"' user@host
 *
 * Exit status 0 when the relay closes normally (1000), 255 (as ssh) on any
 * connection error (a connection that heard nothing for 65 s too), 2 on a bad
 * command line. Messages go to stderr, prefixed
 * `wsproxy-connect:`; the token never appears in them.
 */
import { handshakeRequest, parseConnectArgs, TOKEN_ENV, UsageError, USAGE, type ConnectMode, type ConnectOptions } from './connect-args.js';
import { HandshakeRefused, openRelay } from './open-relay.js';
import { runResumeBridge } from './resume-runner.js';
import { bridgeStdio, type BridgeResult } from './stdio-bridge.js';
import { durationText, watchLiveness, type Liveness } from './liveness.js';
import { onStopSignals } from './stop-signals.js';
import { tolerateWriteErrors } from './tolerate-write-errors.js';
import { printable } from '../common/refusal-body.js';
import { scrub } from './scrub.js';

const EXIT_OK = 0;
const EXIT_USAGE = 2;
const EXIT_FAILURE = 255;

type Runner = (options: ConnectOptions, say: (message: string) => void) => Promise<number>;

/** One runner per mode. */
const RUNNERS: Record<ConnectMode, Runner> = {
  plain: runPlain,
  resume: (options, say) => runResumeBridge({ options, input: process.stdin, output: process.stdout, say }),
};

/** One WebSocket for the whole session: open, bridge, report how it ended. */
async function runPlain(options: ConnectOptions, say: (message: string) => void): Promise<number> {
  const request = handshakeRequest(options);
  let ws;
  try {
    ws = await openRelay(request);
  } catch (err) {
    if (err instanceof HandshakeRefused) say(`relay refused the connection: ${err.message}`);
    else say(`cannot connect to ${request.url}: ${describe(err)}`);
    return EXIT_FAILURE;
  }

  // A path that dies silently closes nothing: without this, ssh would hang on it forever.
  const liveness = watchLiveness(ws, options.liveness);
  const bridge = bridgeStdio({ ws, input: process.stdin, output: process.stdout });
  // ssh sends SIGHUP to its ProxyCommand when it exits: end the relay cleanly
  // (close 1000) instead of dropping it.
  const offSignals = onStopSignals((signal) => bridge.stop(`client ${signal}`));
  const end = await bridge.done;
  offSignals();
  return report(end, liveness, options, say);
}

/** Maps how the bridge ended to an exit status, with a message for failures. */
function report(end: BridgeResult, liveness: Liveness, options: ConnectOptions, say: (message: string) => void): number {
  if (liveness.lost && end.endedBy !== 'output-error' && end.endedBy !== 'input-error') {
    say(`relay connection lost: no traffic for ${durationText(options.liveness.deadAfterMs)}`);
    return EXIT_FAILURE;
  }
  switch (end.endedBy) {
    case 'output-error':
      // EPIPE: whoever read our output has gone (ssh exited); nothing to say.
      if ((end.error as NodeJS.ErrnoException | undefined)?.code === 'EPIPE') return EXIT_OK;
      say(`writing stdout failed: ${describe(end.error)}`);
      return EXIT_FAILURE;
    case 'input-error':
      say(`reading stdin failed: ${describe(end.error)}`);
      return EXIT_FAILURE;
    case 'stopped':
    case 'input-end':
      if (end.code === 1000) return EXIT_OK;
      break;
    case 'remote':
      if (end.code === 1000) return EXIT_OK;
      break;
  }
  say(`relay closed the connection: ${end.code}${end.reason ? ` ${end.reason}` : ''}`);
  return EXIT_FAILURE;
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  // The session does not need its messages read (stdout errors are the bridge's).
  tolerateWriteErrors(process.stderr);
  let secrets: (string | null | undefined)[] = [env[TOKEN_ENV]];
  const say = (message: string): void => {
    process.stderr.write(`wsproxy-connect: ${printable(scrub(message, secrets))}\n`);
  };
  try {
    const parsed = parseConnectArgs(argv, env);
    if (parsed.kind === 'help') {
      process.stdout.write(USAGE + '\n');
      return EXIT_OK;
    }
    secrets = [env[TOKEN_ENV], parsed.options.token];
    return await RUNNERS[parsed.options.mode](parsed.options, say);
  } catch (err) {
    if (err instanceof UsageError) {
      say(err.message);
      process.stderr.write(USAGE + '\n');
      return EXIT_USAGE;
    }
    say(`unexpected error: ${describe(err)}`);
    return EXIT_FAILURE;
  }
}

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  () => process.exit(EXIT_FAILURE),
);
