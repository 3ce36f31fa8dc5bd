import { Inject, Injectable, Optional } from '@nestjs/common';
import { systemClock, type Clock } from '../../common/clock.js';
import { CoalescedRun } from '../../common/coalesced-run.js';
import { Refusal } from '../../common/refusal.js';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';
import type { ClaimOutcome, TunnelRecord } from '../../tunnel/state/tunnel-registry.js';
import type { PortLossCause } from '../../tunnel/state/port-pool.js';
import { CLOCK_KEY, REPLICAS_KEY, WARMING_KEY } from '../cluster-keys.js';
import { ClusterRedis } from '../cluster-redis.service.js';
import { continuityMs, livenessTtlMs } from '../cluster-settings.js';
import { ReplicaIdentity } from '../replica-identity.js';
import { ReplicaAddress } from './replica-address.js';
import { ROUTE_CACHE_CLOCK, ROUTE_CACHE_MAX_MS, RouteCache } from './route-cache.js';
import {
  PORT_PREFIX,
  PORTS_CHANNEL,
  portKey,
  REPLICA_PORTS_PREFIX,
  replicaPortsKey,
  TUNNEL_PREFIX,
  TUNNEL_USERS_PREFIX,
  tunnelKey,
  tunnelUsersKey,
} from './tunnel-keys.js';
import {
  PORT_CLAIM_LUA,
  PORT_CLAIM_WARMING,
  PORT_RELEASE_LUA,
  TUNNEL_BEAT_LUA,
  TUNNEL_CLAIM_LUA,
  TUNNEL_COUNT_LUA,
  TUNNEL_RELEASE_LUA,
  TUNNEL_SIZE_LUA,
} from './tunnel-scripts.js';

/** A tunnel as the cluster knows it: the record plus which replica holds it and where that replica is. */
export interface ClusterTunnelRecord extends TunnelRecord {
  readonly replica: string;
  /** The owner's advertise URL (no trailing slash). */
  readonly url: string;
}

/**
 * A tunnel record as read from Redis, or null when it is not one this replica
 * can act on. Its `url` is dialled, and a signed request is sent to it, so it
 * must be empty (owner not reachable yet) or an http(s) URL; a record written
 * by anything else must not take the replica down when it is used.
 */
export function parseClusterTunnelRecord(json: string): ClusterTunnelRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const r = value as Record<string, unknown>;
  if (typeof r.subdomain !== 'string' || typeof r.user !== 'string' || typeof r.replica !== 'string' || typeof r.url !== 'string') return null;
  if (r.url !== '' && !isHttpUrl(r.url)) return null;
  return value as ClusterTunnelRecord;
}

function isHttpUrl(text: string): boolean {
  if (!URL.canParse(text)) return false;
  const u = new URL(text);
  return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
}

/** An allocated raw port somewhere in the cluster, from the last heartbeat's listing. */
export interface AllocatedPort {
  readonly port: number;
  readonly tunnel: ClusterTunnelRecord;
}

interface TunnelCommands {
  wsproxyTunnelClaim(...args: string[]): Promise<string>;
  wsproxyTunnelRelease(...args: string[]): Promise<number>;
  wsproxyTunnelCount(...args: string[]): Promise<number>;
  wsproxyTunnelSize(...args: string[]): Promise<number>;
  wsproxyPortClaim(...args: string[]): Promise<number>;
  wsproxyPortRelease(...args: string[]): Promise<number>;
  wsproxyTunnelBeat(...args: string[]): Promise<(string | number)[]>;
}

/** The answer of Redis being unreachable or warming up: fail closed, as admissions do. */
function unavailable(): Refusal {
  return new Refusal(503, 'cluster state unavailable', 'cluster');
}

/**
 * This replica's tunnels and raw ports in the cluster: its local truth (the
 * tunnels it holds, their users, the ports it holds), and the Redis round
 * trips that claim, release and re-publish them. Same rules as the counters:
 * a claim is in the local truth before it is sent (a heartbeat sent meanwhile
 * counts it), and the heartbeat rewrites this replica's share from the local
 * truth with the liveness TTL, so a dead replica's tunnels vanish within the
 * TTL and a Redis restarted empty is whole again within one beat (claims
 * wait out its warm-up: see `continuityPrelude`).
 */
@Injectable()
export class ClusterTunnelState {
  private readonly ttlMs: number;
  /** The continuity clock's lifetime, the last argument of the scripts that renew it. */
  private readonly clockMs: string;
  /** Unrenewed this long, this replica's port claims may lapse (see `fenceIfLapsed`). */
  private readonly fenceAfterMs: number;
  /** When the last heartbeat that succeeded was sent: its claims live until then plus the TTL. */
  private renewedAt = Date.now();
  /** A gap this long between two fence checks (one comes every beat at least) is this replica's event loop stalled. */
  private readonly stallAfterMs: number;
  /** When the fence was last checked. */
  private checkedAt = Date.now();
  /** Since when lapsed claims wait for a heartbeat to re-claim them (after a stall), or null. */
  private verifyingSince: number | null = null;
  private readonly usersKey: string;
  private readonly portsKey: string;
  /** Tunnels whose claim Redis confirmed: subdomain → record JSON. */
  private readonly tunnels = new Map<string, { json: string; user: string }>();
  /** Claims in flight or confirmed, per user (the user counts the heartbeat publishes). */
  private readonly users = new Map<string, number>();
  /** Ports this replica holds: port → subdomain. */
  private readonly ports = new Map<number, string>();
  private beatsSent = 0;
  private readonly beating = new CoalescedRun(() => this.startBeat());
  /** Allocated ports cluster-wide at the last heartbeat. */
  private allocated: AllocatedPort[] = [];
  private readonly listeners = new Set<(ports: readonly AllocatedPort[]) => void>();
  private readonly lostListeners = new Set<(port: number, subdomain: string, why: PortLossCause) => void>();
  /** Where other replicas' tunnels are, for forwarding. */
  private readonly routes: RouteCache;

  constructor(
    @Inject(wsproxyConfig.KEY) config: WsproxyConfigType,
    private readonly redis: ClusterRedis,
    private readonly identity: ReplicaIdentity,
    private readonly address: ReplicaAddress,
    @Optional() @Inject(ROUTE_CACHE_CLOCK) routeClock: Clock = systemClock,
  ) {
    this.ttlMs = livenessTtlMs(config);
    this.clockMs = String(continuityMs(config));
    this.fenceAfterMs = this.ttlMs - config.clusterHeartbeatMs;
    this.stallAfterMs = Math.ceil(config.clusterHeartbeatMs * 1.5);
    this.routes = new RouteCache(Math.min(ROUTE_CACHE_MAX_MS, config.clusterHeartbeatMs / 2), routeClock);
    this.usersKey = tunnelUsersKey(identity.id);
    this.portsKey = replicaPortsKey(identity.id);
    const c = redis.client;
    c.defineCommand('wsproxyTunnelClaim', { lua: TUNNEL_CLAIM_LUA, numberOfKeys: 3 });
    c.defineCommand('wsproxyTunnelRelease', { lua: TUNNEL_RELEASE_LUA, numberOfKeys: 2 });
    c.defineCommand('wsproxyTunnelCount', { lua: TUNNEL_COUNT_LUA, numberOfKeys: 1 });
    c.defineCommand('wsproxyTunnelSize', { lua: TUNNEL_SIZE_LUA, numberOfKeys: 1 });
    c.defineCommand('wsproxyPortClaim', { lua: PORT_CLAIM_LUA, numberOfKeys: 2 });
    c.defineCommand('wsproxyPortRelease', { lua: PORT_RELEASE_LUA, numberOfKeys: 2 });
    c.defineCommand('wsproxyTunnelBeat', { lua: TUNNEL_BEAT_LUA, numberOfKeys: 3 });
  }

  private get cmd(): TunnelCommands {
    return this.redis.client as unknown as TunnelCommands;
  }

  get replicaId(): string {
    return this.identity.id;
  }

  /** Registers a tunnel held by this replica: `SET NX` of its subdomain and the cluster-wide per-user limit, atomically. */
  async claimTunnel(record: TunnelRecord, maxPerUser: number): Promise<ClaimOutcome> {
    if (!this.redis.ready) throw unavailable();
    const url = this.address.url();
    const json = JSON.stringify({ ...record, replica: this.identity.id, url } satisfies ClusterTunnelRecord);
    const sentAfter = this.beatsSent;
    bump(this.users, record.user, 1);
    let outcome: ClaimOutcome;
    try {
      const reply = await this.redis.timed('tunnel_claim', () =>
        this.cmd.wsproxyTunnelClaim(
          REPLICAS_KEY,
          tunnelKey(record.subdomain),
          this.usersKey,
          this.identity.id,
          String(this.ttlMs),
          record.user,
          String(maxPerUser),
          json,
          TUNNEL_USERS_PREFIX,
          this.clockMs,
        ),
      );
      if (reply === 'warming') throw unavailable();
      outcome = reply === 'taken' || reply === 'user_limit' ? reply : 'ok';
    } catch {
      bump(this.users, record.user, -1);
      if (this.beatsSent !== sentAfter) this.beatSoon();
      throw unavailable();
    }
    if (outcome === 'ok') {
      this.tunnels.set(record.subdomain, { json, user: record.user });
    } else {
      bump(this.users, record.user, -1);
      if (this.beatsSent !== sentAfter) this.beatSoon();
    }
    return outcome;
  }

  /** Gives a tunnel back; while Redis is unreachable only the local truth changes (its keys expire). */
  async releaseTunnel(subdomain: string): Promise<void> {
    const t = this.tunnels.get(subdomain);
    if (!t) return;
    this.tunnels.delete(subdomain);
    bump(this.users, t.user, -1);
    if (!this.redis.ready) return;
    try {
      await this.redis.timed('tunnel_release', () =>
        this.cmd.wsproxyTunnelRelease(tunnelKey(subdomain), this.usersKey, this.identity.id, t.user),
      );
    } catch {
      // The next heartbeat rewrites this replica's share; the record expires with the TTL.
    }
  }

  /**
   * The tunnel of `subdomain` anywhere in the cluster, or `null`. Rejects
   * (503) when Redis is unreachable, or when it has no record but lost its
   * state lately (warming up): the owner may not have re-published it yet.
   */
  async lookup(subdomain: string): Promise<ClusterTunnelRecord | null> {
    const own = this.tunnels.get(subdomain);
    if (own) return JSON.parse(own.json) as ClusterTunnelRecord;
    if (!this.redis.ready) throw unavailable();
    const [json, warming, clock] = await this.redis.timed('tunnel_lookup', () => this.redis.client.mget(tunnelKey(subdomain), WARMING_KEY, CLOCK_KEY));
    if (json) return parseClusterTunnelRecord(json);
    // Redis lost its state (or ran no script) lately: the tunnel may exist and not be re-published yet.
    if (warming !== null || clock === null) throw unavailable();
    return null;
  }

  /**
   * The owner of `subdomain` for forwarding a request: as `lookup`, with the
   * answer kept for up to half a heartbeat (at most 1 s), so a busy subdomain
   * costs one Redis read per interval instead of one per request. A stale
   * answer is harmless: the old owner answers 404 for a tunnel it no longer
   * holds, and `forgetRoute` drops an owner that could not be reached.
   */
  async route(subdomain: string): Promise<ClusterTunnelRecord | null> {
    const cached = this.routes.get(subdomain);
    if (cached) return cached;
    const record = await this.lookup(subdomain);
    if (record && record.replica !== this.identity.id) this.routes.set(subdomain, record);
    else this.routes.forget(subdomain);
    return record;
  }

  /** Forgets the cached owner of `subdomain` (it could not be reached, or no longer holds the tunnel). */
  forgetRoute(subdomain: string): void {
    this.routes.forget(subdomain);
  }

  async countForUser(user: string): Promise<number> {
    if (!this.redis.ready) throw unavailable();
    return this.redis.timed('tunnel_lookup', () => this.cmd.wsproxyTunnelCount(REPLICAS_KEY, user, TUNNEL_USERS_PREFIX));
  }

  async size(): Promise<number> {
    if (!this.redis.ready) throw unavailable();
    return this.redis.timed('tunnel_lookup', () => this.cmd.wsproxyTunnelSize(REPLICAS_KEY, TUNNEL_USERS_PREFIX));
  }

  /** Claims the lowest port in `[from, max]` that no replica holds, for `subdomain`; `null` when none is free. */
  async claimPort(subdomain: string, from: number, max: number): Promise<number | null> {
    if (!this.redis.ready) throw unavailable();
    const sentAfter = this.beatsSent;
    let port: number;
    try {
      port = Number(
        await this.redis.timed('tunnel_claim', () =>
          this.cmd.wsproxyPortClaim(
            REPLICAS_KEY,
            this.portsKey,
            this.identity.id,
            String(this.ttlMs),
            subdomain,
            String(from),
            String(max),
            PORT_PREFIX,
            PORTS_CHANNEL,
            this.clockMs,
          ),
        ),
      );
    } catch {
      throw unavailable();
    }
    if (port === PORT_CLAIM_WARMING) throw unavailable();
    if (port < 0) return null;
    this.ports.set(port, subdomain);
    // A heartbeat sent while the claim was in flight rewrote the ports without it.
    if (this.beatsSent !== sentAfter) this.beatSoon();
    return port;
  }

  async releasePort(port: number, subdomain: string): Promise<void> {
    if (this.ports.get(port) !== subdomain) return;
    this.ports.delete(port);
    if (!this.redis.ready) return;
    try {
      await this.redis.timed('tunnel_release', () =>
        this.cmd.wsproxyPortRelease(portKey(port), this.portsKey, this.identity.id, subdomain, String(port), PORTS_CHANNEL),
      );
    } catch {
      // Expires with the TTL: the heartbeat no longer renews it.
    }
  }

  /** The holder (subdomain) of `port`: this replica's own, else from the last heartbeat's listing. */
  portOwner(port: number): string | null {
    const own = this.ports.get(port);
    if (own) return own;
    return this.allocated.find((a) => a.port === port)?.tunnel.subdomain ?? null;
  }

  /** Allocated ports cluster-wide as of the last heartbeat, plus this replica's own. */
  allocatedPorts(): number[] {
    const all = new Set<number>([...this.ports.keys(), ...this.allocated.map((a) => a.port)]);
    return [...all].sort((a, b) => a - b);
  }

  /**
   * Called with a port this replica held and another replica now holds: its
   * claim expired while this replica could not renew it (a partition longer
   * than the TTL) and the port was claimed again. The local tunnel must stop
   * serving it, or one port would lead to two tunnels.
   */
  onPortLost(listener: (port: number, subdomain: string, why: PortLossCause) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /**
   * Called before every tunnel heartbeat. Once the claims have gone unrenewed
   * for the TTL less one beat (Redis unreachable), they may lapse and another
   * replica may claim the same ports: this replica gives them all up first,
   * so a port never leads to two tunnels even during a partition.
   *
   * Unless this replica's event loop stalled (a major GC, a throttled CPU)
   * across that point: it served nothing meanwhile, and the heartbeat sent
   * next re-claims, atomically, the ports no other replica took (those it
   * took are reported lost). The ports are given up only if that heartbeat
   * fails.
   */
  fenceIfLapsed(now = Date.now()): void {
    const stalled = now - this.checkedAt >= this.stallAfterMs;
    this.checkedAt = now;
    if (this.ports.size === 0 || now - this.renewedAt < this.fenceAfterMs) return;
    if (stalled && this.verifyingSince === null) this.verifyingSince = now;
    if (this.verifyingSince === null) this.fence();
  }

  private fence(): void {
    this.verifyingSince = null;
    for (const port of [...this.ports.keys()]) this.portLost(port, 'unrenewed');
  }

  /** A heartbeat sent at `sentAt` failed: lapsed claims waiting for one sent since are given up. */
  private beatFailed(sentAt: number): void {
    if (this.verifyingSince !== null && sentAt >= this.verifyingSince) this.fence();
  }

  private portLost(port: number, why: PortLossCause): void {
    const subdomain = this.ports.get(port);
    if (subdomain === undefined) return;
    this.ports.delete(port);
    for (const l of this.lostListeners) l(port, subdomain, why);
  }

  /** Called with the cluster-wide port listing after every heartbeat. */
  onPorts(listener: (ports: readonly AllocatedPort[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * One tunnel heartbeat: renews this replica's tunnels and ports and reads
   * the cluster-wide port listing. A beat requested while one is in flight
   * runs right after it. Rejects when Redis is unreachable.
   */
  beat(): Promise<AllocatedPort[]> {
    return this.beating.run();
  }

  private startBeat(): Promise<AllocatedPort[]> {
    const sentAt = Date.now();
    if (!this.redis.ready) {
      this.beatFailed(sentAt);
      throw unavailable();
    }
    this.beatsSent++;
    const args: string[] = [String(this.tunnels.size)];
    for (const [sub, t] of this.tunnels) args.push(sub, t.json);
    args.push(String(this.users.size));
    for (const [user, n] of this.users) args.push(user, String(n));
    args.push(String(this.ports.size));
    for (const [port, sub] of this.ports) args.push(String(port), sub);
    args.push(this.clockMs);
    return this.redis
      .timed('tunnel_heartbeat', () =>
        this.cmd.wsproxyTunnelBeat(
          REPLICAS_KEY,
          this.usersKey,
          this.portsKey,
          this.identity.id,
          String(this.ttlMs),
          TUNNEL_PREFIX,
          PORT_PREFIX,
          REPLICA_PORTS_PREFIX,
          ...args,
        ),
      )
      .then((reply) => {
        this.renewedAt = sentAt;
        if (this.verifyingSince !== null && sentAt >= this.verifyingSince) this.verifyingSince = null;
        const lostCount = Number(reply[0]) || 0;
        for (let k = 1; k <= lostCount; k++) this.portLost(Number(reply[k]), 'taken');
        const listing: AllocatedPort[] = [];
        for (let i = 1 + lostCount; i + 1 < reply.length; i += 2) {
          const tunnel = parseClusterTunnelRecord(String(reply[i + 1]));
          // A record that is not ours to read is skipped.
          if (tunnel) listing.push({ port: Number(reply[i]), tunnel });
        }
        this.allocated = listing;
        for (const l of this.listeners) l(listing);
        return listing;
      })
      .catch((err: unknown) => {
        this.beatFailed(sentAt);
        throw err;
      });
  }

  /** Best-effort removal of everything this replica holds, at a clean shutdown. */
  async leave(): Promise<void> {
    const subs = [...this.tunnels.keys()];
    const ports = [...this.ports.entries()];
    await Promise.all([...subs.map((s) => this.releaseTunnel(s)), ...ports.map(([p, s]) => this.releasePort(p, s))]);
  }

  private beatSoon(): void {
    this.beat().catch(() => undefined);
  }
}

function bump(map: Map<string, number>, key: string, by: number): void {
  const n = (map.get(key) ?? 0) + by;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}
