/**
 * A throwaway Redis for the cluster tests: Debian's `redis-server` on a free
 * loopback port, persistence off, started and stopped by the test itself (never
 * a system service). `restart()` brings it back on the same port, empty.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForOutput } from './process.js';

export const REDIS_SERVER = 'redis-server';

/** Fails with one clear line when redis-server is missing (CI installs it). */
export function requireRedisServer(): void {
  if (spawnSync('sh', ['-c', `command -v ${REDIS_SERVER}`]).status !== 0) {
    throw new Error(`${REDIS_SERVER} is required for the cluster tests and is missing. .ci/run installs it: apt-get install -y redis-server`);
  }
}

export class TestRedis {
  private child: ChildProcess | null = null;
  private output = '';

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly password: string | undefined,
  ) {}

  /** `redis://127.0.0.1:<port>`, with `:<password>@` when the server requires one. */
  get url(): string {
    return `redis://${this.password === undefined ? '' : `:${encodeURIComponent(this.password)}@`}127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** Starts a server; with `password`, clients must authenticate (`requirepass`). */
  static async start(options: { password?: string } = {}): Promise<TestRedis> {
    requireRedisServer();
    const dir = await mkdtemp(join(tmpdir(), 'wsproxy-redis-'));
    const redis = new TestRedis(await freePort(), dir, options.password);
    await redis.launch();
    return redis;
  }

  /** redis-server's output so far (for failure messages). */
  logs(): string {
    return this.output;
  }

  /** Stops the server: SIGKILL by default (a crash), or SIGTERM. Resolves once it has exited. */
  async stop(signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    // A paused server only acts on SIGKILL; let a SIGTERM through.
    child.kill('SIGCONT');
    await exited;
  }

  /** Freezes the server (SIGSTOP): connections stay open and nothing answers, as in a partition. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  /** Lets a paused server run again (SIGCONT). */
  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Starts a fresh, empty server on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** Stops the server and removes its directory. */
  async close(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  private launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--daemonize', 'no'];
    if (this.password !== undefined) args.push('--requirepass', this.password);
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.output = '';
    const collect = (chunk: Buffer): void => {
      this.output += chunk.toString();
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    return waitForOutput(child, [child.stdout!, child.stderr!], () => this.output, /Ready to accept connections/, REDIS_SERVER).catch((err: unknown) => {
      this.child = null;
      child.kill('SIGKILL');
      throw err;
    });
  }
}

/** A `CLUSTER_SECRET` for tests. */
export const TEST_CLUSTER_SECRET = 'test-cluster-secret-0123456789abcdef';

/** Env of a cluster replica on `redis`: fast heartbeat (200 ms; the liveness TTL is then its minimum, 3 s), no drain wait. */
export function clusterEnv(redis: TestRedis, extra: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL: redis.url,
    CLUSTER_SECRET: TEST_CLUSTER_SECRET,
    CLUSTER_HEARTBEAT_MS: '200',
    SHUTDOWN_TIMEOUT_MS: '0',
    ...extra,
  };
}

/** One command to the test Redis over RESP; the reply as a string (bulk, simple or integer), or null. */
export function redisCommand(redis: TestRedis, args: string[]): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const s = connect(redis.port, '127.0.0.1');
    let data = '';
    s.on('data', (c: Buffer) => {
      data += c.toString();
      const m = /^(?:[+:](.*)\r\n|\$-1\r\n|\$(\d+)\r\n([\s\S]*)\r\n)$/.exec(data);
      if (!m) return;
      s.end();
      resolve(data.startsWith('$-1') ? null : (m[1] ?? m[3]!.slice(0, Number(m[2]))));
    });
    s.on('error', reject);
    s.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''));
  });
}

/**
 * Asserts, by Redis's clock, that `key` expires within `ttlMs` and that nothing renews it: its PTTL is at most the
 * TTL, and two beats later lower by more than a beat (a renewal every beat would keep it within a beat of the
 * TTL), or the key is gone (-2).
 */
export async function assertExpiringUnrenewed(redis: TestRedis, key: string, ttlMs: number, beatMs: number): Promise<void> {
  const first = Number(await redisCommand(redis, ['PTTL', key]));
  assert.ok(first === -2 || (first > 0 && first <= ttlMs), `${key}: PTTL ${first} ms, TTL ${ttlMs} ms`);
  if (first === -2) return;
  await new Promise((r) => setTimeout(r, 2 * beatMs));
  const later = Number(await redisCommand(redis, ['PTTL', key]));
  assert.ok(later === -2 || (later > 0 && later < first - beatMs), `${key}: PTTL ${first} ms, then ${later} ms two beats later: renewed`);
}
