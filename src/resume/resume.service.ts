import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { WebSocket } from 'ws';
import { ChurnMap } from '../common/churn-map.js';
import { WsproxyEvents, type RelayOpenedEvent } from '../common/events.js';
import { armMaxAge } from '../common/max-age.js';
import { Refusal } from '../common/refusal.js';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { DrainService } from '../lifecycle/drain.service.js';
import { PINO, type Pino } from '../logging/logging.module.js';
import { relayClosedEvent } from '../relay/relay-closed.js';
import type { PipeEnd } from '../relay/relay-pipe.js';
import type { RelaySetup } from '../relay/relay.service.js';
import { KeepaliveService } from '../upgrade/keepalive.service.js';
import { ResumableSession, type SessionHost } from './resumable-session.js';
import { newSessionId } from './session-id.js';
import type { ControlMode } from './wire.js';

/** The one answer for an unknown, expired or someone else's session id. */
export function unknownSession(): Refusal {
  return new Refusal(404, 'unknown session', 'not_found');
}

/**
 * Owns the resumable relays (`/relay?...&resume=1`): creates them, finds them
 * for a reattach (only for the user who opened them), and reports their
 * lifecycle — `resume.detached`, `resume.reattached`, `resume.expired`, plus the
 * same `relay.opened` / `relay.closed` events and log lines as plain relays.
 * Ids are never logged whole (see `logSafeId`).
 */
@Injectable()
export class ResumeService implements OnApplicationShutdown {
  private readonly sessions = new ChurnMap<string, ResumableSession>();
  /** By session id: ends the drain's tracking of an attached session. */
  private readonly untrack = new ChurnMap<string, () => void>();
  /** By session id: the `MAX_CONNECTION_S` timer. */
  private readonly maxAge = new ChurnMap<string, () => void>();
  private readonly host: SessionHost;

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    @Inject(PINO) private readonly log: Pino,
    private readonly events: WsproxyEvents,
    private readonly drain: DrainService,
    keepalive: KeepaliveService,
  ) {
    const self = this;
    this.host = {
      windowS: config.resumeWindowS,
      bufferBytes: config.resumeBufferBytes,
      maxMessageBytes: config.maxMessageBytes,
      watch: (ws) => keepalive.watch(ws),
      get draining() {
        return self.drain.draining;
      },
      detached: (s) => this.onDetached(s),
      reattached: (s) => this.onReattached(s),
      ended: (s, end) => this.onEnded(s, end),
    };
    drain.onStart(() => this.endDetached());
  }

  /** Whether `resume=1` opens resumable sessions (`RESUME_WINDOW_S` > 0). */
  get enabled(): boolean {
    return this.config.resumeWindowS > 0;
  }

  /**
   * Sessions not yet reported ended: attached, detached, or closing (their
   * bytes still count in the metrics until the end is reported).
   */
  liveSessions(): ResumableSession[] {
    return this.sessions.values();
  }

  /** Starts a resumable relay on an admitted connection: the session frame goes out first. */
  open(ws: WebSocket, setup: RelaySetup, control: ControlMode): ResumableSession {
    let id = newSessionId();
    while (this.sessions.has(id)) id = newSessionId();
    const session = new ResumableSession(id, setup, control, this.host);
    this.sessions.set(id, session);
    this.track(session);
    if (this.config.maxConnectionS > 0) {
      this.maxAge.set(id, armMaxAge(this.config.maxConnectionS, () => session.shutdown(4408, 'maximum connection age reached')));
    }
    session.attach(ws, null);
    const opened = this.describe(session);
    this.log.info({ event: 'relay_start', ...opened }, 'relay started');
    this.events.emit('relay.opened', opened);
    return session;
  }

  /** Whether a session `id` exists and has not ended (whoever's it is): a reattach to it rides on its slot. */
  isLive(id: string): boolean {
    const session = this.sessions.get(id);
    return session !== undefined && session.state !== 'ended';
  }

  /**
   * The session `id` for a reattach by `user` from byte `received`. Throws the
   * same `Refusal(404)` for an unknown id, an ended one and another user's;
   * `Refusal(400)` when `received` is outside what the session still holds.
   */
  claim(id: string, user: string, received: number): ResumableSession {
    const session = this.sessions.get(id);
    if (!session || session.state === 'ended' || session.setup.user !== user) throw unknownSession();
    if (!session.canResumeFrom(received)) throw new Refusal(400, 'received count out of range', 'bad_request');
    return session;
  }

  /** Attaches an accepted reattach socket (the session may have ended meanwhile: then 4404). */
  reattach(ws: WebSocket, session: ResumableSession, received: number): void {
    session.attach(ws, received);
  }

  onApplicationShutdown(): void {
    for (const session of this.sessions.values()) if (session.state !== 'ended') session.shutdown(1001, 'server shutting down');
  }

  /**
   * Attached sessions keep a drain waiting, like plain relays; detached ones do
   * not (nobody can reattach while draining): they end when it starts.
   */
  private track(s: ResumableSession): void {
    if (this.untrack.has(s.id)) return;
    this.untrack.set(s.id, this.drain.track({ shutdown: (code, reason) => s.shutdown(code, reason), terminate: () => s.terminate() }));
  }

  /**
   * Ends the detached sessions when a drain starts, tracked again until they
   * report: their target closes asynchronously, and the app must not finish
   * closing (and the process exit) before their `relay_end`.
   */
  private endDetached(): void {
    for (const s of this.sessions.values()) {
      if (s.state !== 'detached') continue;
      this.track(s);
      s.shutdown(1001, 'server shutting down');
    }
  }

  private stopTracking(s: ResumableSession): void {
    this.untrack.get(s.id)?.();
    this.untrack.delete(s.id);
  }

  private describe(s: ResumableSession): RelayOpenedEvent {
    return { id: s.shortId, clientIp: s.setup.clientIp, user: s.setup.user, target: s.setup.target, resumable: true };
  }

  private onDetached(s: ResumableSession): void {
    this.stopTracking(s);
    this.log.info({ event: 'resume_detached', id: s.shortId, user: s.setup.user, windowS: this.config.resumeWindowS }, 'resumable relay detached');
    this.events.emit('resume.detached', { id: s.shortId });
  }

  private onReattached(s: ResumableSession): void {
    this.track(s);
    this.log.info({ event: 'resume_reattached', id: s.shortId, user: s.setup.user }, 'resumable relay reattached');
    this.events.emit('resume.reattached', { id: s.shortId });
  }

  private onEnded(s: ResumableSession, end: PipeEnd & { readonly expired: boolean }): void {
    this.sessions.delete(s.id);
    this.stopTracking(s);
    this.maxAge.get(s.id)?.();
    this.maxAge.delete(s.id);
    s.setup.lease.release();
    if (end.expired) {
      this.log.info({ event: 'resume_expired', id: s.shortId, user: s.setup.user, windowS: this.config.resumeWindowS }, 'resume window expired');
      this.events.emit('resume.expired', { id: s.shortId });
    }
    const closed = relayClosedEvent(this.describe(s), s.setup.socket, s.started, end, s.deliveredBytes);
    this.log.info({ event: 'relay_end', ...closed }, 'relay ended');
    this.events.emit('relay.closed', closed);
  }
}
