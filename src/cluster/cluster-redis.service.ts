import { Inject, Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { withDeadline } from '../common/deadline.js';
import { WsproxyEvents, type ClusterRedisEvent } from '../common/events.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { PINO, type Pino } from '../logging/logging.module.js';
import { ADMIT_LUA, HEARTBEAT_LUA, LEAVE_LUA, RELEASE_LUA } from './cluster-scripts.js';
import { REDIS_COMMAND_TIMEOUT_MS, REDIS_CONNECT_TIMEOUT_MS, REDIS_MAX_RECONNECT_DELAY_MS } from './cluster-settings.js';
import { ReplicaIdentity } from './replica-identity.js';

/** The Lua scripts as client commands (EVALSHA, EVAL on a fresh connection). */
export interface ClusterScripts {
  wsproxyAdmit(...keysAndArgs: string[]): Promise<string>;
  wsproxyRelease(...keysAndArgs: string[]): Promise<number>;
  /** Resolves with [live replicas, ms of warm-up left]. */
  wsproxyHeartbeat(...keysAndArgs: string[]): Promise<[number, number]>;
  wsproxyLeave(...keysAndArgs: string[]): Promise<number>;
}

/**
 * Whether `err` is Redis refusing the SELECT of the database in REDIS_URL
 * because it has no such database: that does not pass with time. Other
 * SELECT errors (BUSY while a script runs, LOADING) do, and the connection
 * carries on.
 */
function isSelectRefusal(err: Error | undefined): boolean {
  return (err as { command?: { name?: string } } | undefined)?.command?.name === 'select' && /DB index/i.test(err?.message ?? '');
}

/** The database REDIS_URL selects (its path, or ioredis's `db` query parameter), for logs. */
function redisDb(url: string): string {
  const u = new URL(url);
  return u.pathname.slice(1) || (u.searchParams.get('db') ?? '');
}

/** Where Redis is, for logs: never the password. */
function describe(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return 'redis';
  }
}

/** The error of a round trip past `REDIS_COMMAND_TIMEOUT_MS` (ioredis's own words for it). */
const commandTimedOut = (): Error => new Error('Command timed out');

/**
 * The replica's one Redis connection. Commands are never queued while Redis is
 * unreachable (`enableOfflineQueue: false`) and never retried (a command in
 * flight when the connection drops fails at once), so an admission fails fast
 * instead of waiting; the client reconnects by itself with a short backoff.
 * Commands go out on one connection in the order they are issued, which the
 * counter store relies on.
 */
@Injectable()
export class ClusterRedis {
  readonly client: Redis & ClusterScripts;
  /**
   * For logging transitions once: `start` until the first connection or
   * failure; `invalid` for good once Redis refused the database REDIS_URL selects.
   */
  private state: 'start' | 'up' | 'down' | 'closed' | 'invalid' = 'start';
  private readonly where: string;

  constructor(
    @Inject(wsproxyConfig.KEY) config: WsproxyConfigType,
    identity: ReplicaIdentity,
    private readonly events: WsproxyEvents,
    @Inject(PINO) private readonly log: Pino,
  ) {
    this.where = describe(config.redisUrl);
    const tls = new URL(config.redisUrl).protocol === 'rediss:';
    const client = new Redis(config.redisUrl, {
      ...(tls ? { tls: {} } : {}),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
      retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), REDIS_MAX_RECONNECT_DELAY_MS),
      connectionName: `wsproxy-${identity.id}`,
      disableClientInfo: true,
      scripts: {
        wsproxyAdmit: { lua: ADMIT_LUA, numberOfKeys: 3 },
        wsproxyRelease: { lua: RELEASE_LUA, numberOfKeys: 2 },
        wsproxyHeartbeat: { lua: HEARTBEAT_LUA, numberOfKeys: 3 },
        wsproxyLeave: { lua: LEAVE_LUA, numberOfKeys: 3 },
      },
    });
    this.client = client as Redis & ClusterScripts;
    client.on('ready', () => {
      if (this.state === 'up') return;
      this.log.info({ event: this.state === 'down' ? 'cluster_redis_up' : 'cluster_redis_connected', redis: this.where }, 'cluster state store reachable');
      this.state = 'up';
    });
    const down = (err?: Error): void => {
      if (this.state === 'invalid') return;
      if (isSelectRefusal(err)) {
        // ioredis carries on in database 0 after a refused SELECT: replicas would share state nobody asked for.
        this.state = 'invalid';
        this.log.error(
          { event: 'cluster_redis_db_refused', redis: this.where, db: redisDb(config.redisUrl), err: err?.message },
          'Redis refused the database REDIS_URL selects: new connections are refused with 503 until wsproxy restarts with a valid REDIS_URL',
        );
        client.disconnect();
        return;
      }
      if (this.state === 'down' || this.state === 'closed') {
        if (err) this.log.debug({ event: 'cluster_redis_error', err: err.message }, 'cluster state store error');
        return;
      }
      this.state = 'down';
      this.log.warn(
        { event: 'cluster_redis_down', redis: this.where, err: err?.message },
        'cluster state store unreachable: new connections are refused with 503 until it is back',
      );
    };
    client.on('error', (err: Error) => down(err));
    client.on('close', () => down());
  }

  /** Whether commands can be sent now (connected and past the ready check). */
  get ready(): boolean {
    return this.client.status === 'ready';
  }

  /** Starts connecting; resolves when connected or after `waitMs`, never rejects. */
  async connect(waitMs = REDIS_CONNECT_TIMEOUT_MS): Promise<void> {
    const connected = this.client.connect().catch(() => undefined);
    await Promise.race([connected, new Promise((r) => setTimeout(r, waitMs).unref())]);
  }

  /**
   * Runs one round trip, failing after `REDIS_COMMAND_TIMEOUT_MS`, and reports
   * its duration and outcome as a `cluster.redis` event. Not ioredis's
   * `commandTimeout`: after an event-loop stall its timer fires before the
   * reply that arrived meanwhile is read (see `withDeadline`).
   */
  async timed<T>(op: ClusterRedisEvent['op'], fn: () => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    const report = (ok: boolean): void =>
      void this.events.emit('cluster.redis', { op, ok, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    try {
      const result = await withDeadline(fn(), REDIS_COMMAND_TIMEOUT_MS, commandTimedOut);
      report(true);
      return result;
    } catch (err) {
      report(false);
      throw err;
    }
  }

  /** Closes the connection for good (QUIT, or a hard disconnect when Redis is gone). */
  async close(): Promise<void> {
    this.state = 'closed';
    if (this.ready) {
      try {
        // Bounded like every command: a Redis that stopped answering would otherwise hold the shutdown forever.
        await withDeadline(this.client.quit(), REDIS_COMMAND_TIMEOUT_MS, commandTimedOut);
        return;
      } catch {
        // fall through
      }
    }
    this.client.disconnect();
  }
}
