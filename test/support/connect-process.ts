import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { CONNECT_JS } from './process.js';

/** A running `wsproxy-connect`: its output as it comes, and its exit. */
export interface RunningConnect {
  readonly child: ChildProcessWithoutNullStreams;
  stdout(): Buffer;
  stdoutBytes(): number;
  stderr(): string;
  /** The exit status, or the signal's name when a signal ended it. */
  readonly exited: Promise<number | string | null>;
}

/** Starts `wsproxy-connect ...args` with stdin, stdout and stderr piped; `env` on top of this process's, without its WSPROXY_TOKEN. */
export function startConnect(args: string[], env: Record<string, string> = {}): RunningConnect {
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  delete childEnv.WSPROXY_TOKEN;
  const child = spawn(process.execPath, [CONNECT_JS, ...args], { env: { ...childEnv, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let outBytes = 0;
  let err = '';
  child.stdout.on('data', (c: Buffer) => {
    out.push(c);
    outBytes += c.length;
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  child.stdin.on('error', () => undefined);
  const exited = new Promise<number | string | null>((r) => child.once('close', (code, signal) => r(code ?? signal)));
  return { child, stdout: () => Buffer.concat(out), stdoutBytes: () => outBytes, stderr: () => err, exited };
}
