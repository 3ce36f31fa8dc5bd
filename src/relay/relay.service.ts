import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { Inject, Injectable } from '@nestjs/common';
import type { WebSocket } from 'ws';
import { ChurnSet } from '../common/churn-map.js';
import { WsproxyEvents, type RelayOpenedEvent } from '../common/events.js';
import { armMaxAge, UNARMED } from '../common/max-age.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { DrainService } from '../lifecycle/drain.service.js';
import type { Lease } from '../limits/limits.service.js';
import { PINO, type Pino } from '../logging/logging.module.js';
import { KeepaliveService } from '../upgrade/keepalive.service.js';
import type { DirectReader } from './direct-reader.js';
import { relayClosedEvent } from './relay-closed.js';
import { pipeRelay, type RelayPipe } from './relay-pipe.js';

/** Relay ids for logs: a per-process random prefix and a counter (no CSPRNG call per relay). */
const ID_PREFIX = randomBytes(4).toString('hex');
let idCounter = 0;

/** Everything a relay needs once admitted: who, where, the connected target and the held slot. */
export interface RelaySetup {
  readonly clientIp: string;
  readonly user: string;
  /** `host:port` as the client named it. */
  readonly target: string;
  readonly socket: Socket;
  readonly lease: Lease;
  /** Set when the socket reads through a `DirectReader` (resumable sessions); it is paused until started. */
  readonly reader?: DirectReader;
}

/** A live relay, as metrics and diagnostics see it. */
export interface LiveRelay {
  readonly ws: WebSocket;
  readonly socket: Socket;
  readonly pipe: RelayPipe;
}

/**
 * Runs admitted relays: wires the byte pipe, keepalive, drain tracking and the
 * maximum age, logs one event at start and one at end, and gives the limit slot
 * back exactly once however the relay ends.
 */
@Injectable()
export class RelayService {
  private readonly live = new ChurnSet<LiveRelay>();

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    @Inject(PINO) private readonly log: Pino,
    private readonly events: WsproxyEvents,
    private readonly drain: DrainService,
    private readonly keepalive: KeepaliveService,
  ) {}

  /** How many relays are live. */
  get liveCount(): number {
    return this.live.size;
  }

  /** Live relays (their byte counters feed metrics at scrape time). */
  liveRelays(): readonly LiveRelay[] {
    return this.live.values();
  }

  start(ws: WebSocket, setup: RelaySetup): void {
    const id = `${ID_PREFIX}${(++idCounter).toString(36)}`;
    const started = Date.now();
    const opened: RelayOpenedEvent = { id, clientIp: setup.clientIp, user: setup.user, target: setup.target, resumable: false };
    let cancelMaxAge = UNARMED;

    const pipe = pipeRelay(ws, setup.socket, (end) => {
      cancelMaxAge();
      untrack();
      this.live.delete(handle);
      setup.lease.release();
      const closed = relayClosedEvent(opened, setup.socket, started, end, pipe.bytesDown());
      if (this.log.isLevelEnabled('info')) this.log.info({ event: 'relay_end', ...closed }, 'relay ended');
      this.events.emit('relay.closed', closed);
    });
    this.keepalive.watch(ws, (reason) => pipe.timedOut(reason));
    const handle = this.live.add({ ws, socket: setup.socket, pipe });
    const untrack = this.drain.track({
      shutdown: (code, reason) => pipe.close(code, reason),
      terminate: () => pipe.terminate(),
      settled: pipe.settled,
    });
    cancelMaxAge = armMaxAge(this.config.maxConnectionS, () => pipe.close(4408, 'maximum connection age reached'));
    if (this.log.isLevelEnabled('info')) this.log.info({ event: 'relay_start', ...opened }, 'relay started');
    this.events.emit('relay.opened', opened);
  }
}
