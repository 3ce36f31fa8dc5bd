import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { createServer, type AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { untilClusterWarmedUp } from './cluster-warmup.js';

/** The repository root (tests run from `.build/test/...`). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const MAIN_JS = `${REPO_ROOT}dist/main.js`;
/** The built `wsproxy-connect` command. */
export const CONNECT_JS = `${REPO_ROOT}dist/cli/connect.js`;

/** A free TCP port on 127.0.0.1 (closed again; fine for tests that start a server right after). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** The built service running as a child process, as in production. */
export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** Every stdout and stderr line so far. */
  readonly lines: string[];
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
}

/**
 * Starts `node dist/main.js` (or another entry point, `main`) with `env` and waits until it listens
 * (and, for a cluster replica, until the cluster state has warmed up);
 * `openFileLimit` runs it under that open-file limit (`ulimit -n`).
 */
export async function startServiceProcess(env: Record<string, string>, main: string = MAIN_JS, options: { openFileLimit?: number } = {}): Promise<ServiceProcess> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const [command, args] =
    options.openFileLimit === undefined
      ? [process.execPath, [main]]
      : ['bash', ['-c', `ulimit -n ${options.openFileLimit} && exec "$0" "$1"`, process.execPath, main]];
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH ?? '', BIND_HOST: '127.0.0.1', BLOCKED_TARGETS: '10.0.0.0/8', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let listening!: () => void;
  const ready = new Promise<void>((r) => (listening = r));
  const collect = (chunk: Buffer): void => {
    for (const line of chunk.toString().split('\n')) {
      if (!line) continue;
      lines.push(line);
      if (line.includes('"event":"listening"')) listening();
    }
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  await Promise.race([
    ready,
    exited.then((code) => {
      throw new Error(`service exited with ${code} before listening:\n${lines.join('\n')}`);
    }),
  ]);
  if (env.REDIS_URL) await untilClusterWarmedUp(`http://127.0.0.1:${port}`);
  return { child, port, lines, exited };
}

/** A command-line program run by a test: its stdout lines and its stderr text as they come. */
export interface CliProcess {
  readonly child: ChildProcess;
  readonly lines: string[];
  stderr: string;
}

/** Runs `node <file> ...args` with only PATH and `env` in its environment. */
export function runCli(file: string, args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [file, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc: CliProcess = { child, lines: [], stderr: '' };
  createInterface({ input: child.stdout! }).on('line', (l) => proc.lines.push(l));
  child.stderr!.on('data', (c: Buffer) => (proc.stderr += c.toString()));
  return proc;
}

/** Resolves with the exit code of `p`, at once if it already exited. */
export async function exitCode(p: CliProcess): Promise<number | null> {
  if (p.child.exitCode !== null) return p.child.exitCode;
  const [code] = (await once(p.child, 'exit')) as [number | null];
  return code;
}

/**
 * Resolves once `output()` matches `ready`, checked on every chunk `child`
 * writes to `streams`; rejects when it exits first or after `timeoutMs`, with
 * the output so far. `what` names the program in the error.
 */
export function waitForOutput(child: ChildProcess, streams: readonly Readable[], output: () => string, ready: RegExp, what: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${what} did not start within ${timeoutMs} ms:\n${output()}`)), timeoutMs);
    const onData = (): void => {
      if (ready.test(output())) done();
    };
    const onExit = (code: number | null, signal: string | null): void => fail(new Error(`${what} exited (${code ?? signal}) before it was ready:\n${output()}`));
    const cleanup = (): void => {
      clearTimeout(timer);
      for (const s of streams) s.off('data', onData);
      child.off('exit', onExit);
    };
    const done = (): void => {
      cleanup();
      resolve();
    };
    const fail = (err: Error): void => {
      cleanup();
      reject(err);
    };
    for (const s of streams) s.on('data', onData);
    child.once('exit', onExit);
  });
}
