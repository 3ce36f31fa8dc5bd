import type { Duplex } from 'node:stream';
import { Refusal } from '../common/refusal.js';
import { HeldBody } from '../common/held-body.js';
import { setReadableMark } from '../common/socket-bounds.js';

/**
 * The part of `AbortSignal` that admission uses to notice a client that went
 * away. `AbortSignal` satisfies it (tests, callers outside the upgrade path).
 */
export interface GoneSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** The refusal of an admission whose client left before it was done (400: nobody reads it). */
export function clientWentAway(): Refusal {
  return new Refusal(400, 'client went away', 'bad_request');
}

/**
 * `step`, or a `clientWentAway` refusal as soon as `signal` says the client has
 * gone: for an admission step that cannot be cancelled (a name lookup), so the
 * limit slot is given back now, not when the step settles.
 */
export function untilClientGone<T>(step: Promise<T>, signal: GoneSignal): Promise<T> {
  if (signal.aborted) {
    step.catch(() => undefined);
    return Promise.reject(clientWentAway());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(clientWentAway());
    signal.addEventListener('abort', onAbort, { once: true });
    step.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** How long a step of admission may wait before the client's socket is watched for a FIN. */
export const FIN_WATCH_AFTER_MS = 250;
/** Bytes a watched client may send before its 101 (RFC 6455 says none) that are kept for the handshake. */
const MAX_EARLY_BYTES = 64 * 1024;

/**
 * A `GoneSignal` read straight from the client's socket: aborted once the
 * socket is destroyed, listeners on its `close`. An `AbortController` per
 * upgrade, and the listeners to attach and detach it, cost several
 * microseconds of every setup for an event that almost never fires.
 *
 * A client that closes normally only half-closes (FIN): the upgrade socket is
 * not read during admission, so nothing would notice until the step's own
 * timeout (a dial to an unresponsive target holds the limit slot for
 * `DIAL_TIMEOUT_MS`). A step that has waited `FIN_WATCH_AFTER_MS` therefore
 * starts reading the socket: its FIN destroys it, and any bytes before it are
 * kept for the handshake (`release`). Fast admissions never pay for it.
 *
 * Unwatched, the socket is still read by Node: the HTTP parser hands it over
 * with its handle reading, and Node buffers reads until 16 KiB wait, a Buffer
 * each (for an upgrade trickling a byte per TCP segment, 16 384 Buffers:
 * 3.4 MiB of heap and ~11 MiB of RSS, for every admission a client can keep
 * waiting). So until `release` it stops at its first read instead, and the
 * kernel holds what follows.
 */
export class SocketGoneSignal implements GoneSignal {
  private watchTimer: NodeJS.Timeout | null = null;
  /** Bytes read while watching, kept in about their size however the client cut them (a Buffer per read is ~340 bytes). */
  private early: HeldBody | null = null;
  private earlyBytes = 0;
  private listeners: (() => void)[] | null = null;
  private abortedByCall = false;
  /** The socket's readable mark, given back for the handshake. */
  private readonly readableMark: number;

  constructor(private readonly socket: Duplex) {
    this.readableMark = socket.readableHighWaterMark;
    setReadableMark(socket, 0);
  }

  get aborted(): boolean {
    return this.abortedByCall || this.socket.destroyed;
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    this.socket.once('close', listener);
    (this.listeners ??= []).push(listener);
    if (this.watchTimer === null && this.early === null && !this.abortedByCall) {
      this.watchTimer = setTimeout(this.watch, FIN_WATCH_AFTER_MS);
    }
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    this.socket.off('close', listener);
    const i = this.listeners?.indexOf(listener) ?? -1;
    if (i !== -1) this.listeners!.splice(i, 1);
    this.stopWatchTimer();
  }

  /**
   * Aborts now, with the client still there: its admission was answered
   * otherwise (the drain refused it). Listeners run, the steps still to come
   * see `aborted`, and the socket is not watched again.
   */
  abort(): void {
    if (this.abortedByCall) return;
    this.abortedByCall = true;
    this.stopWatchTimer();
    const listeners = this.listeners ?? [];
    this.listeners = null;
    for (const listener of listeners) {
      this.socket.off('close', listener);
      listener();
    }
  }

  /**
   * Stops watching, before the handshake takes the socket over: returns the
   * bytes read while watching (to go in front of the upgrade's `head`), or
   * null when it never watched.
   */
  release(): Buffer | null {
    this.stopWatchTimer();
    setReadableMark(this.socket, this.readableMark);
    const early = this.early;
    if (early === null) return null;
    this.early = null;
    this.socket.off('data', this.keep);
    this.socket.off('end', this.gone);
    // Flowing again from the next tick, by when the handshake has its own 'data' listener.
    this.socket.resume();
    return early.take();
  }

  /** `release` for the handshake: `head` followed by the bytes read while watching. */
  releaseInto(head: Buffer): Buffer {
    const early = this.release();
    return early === null ? head : Buffer.concat([head, early]);
  }

  private stopWatchTimer(): void {
    if (this.watchTimer === null) return;
    clearTimeout(this.watchTimer);
    this.watchTimer = null;
  }

  private readonly watch = (): void => {
    this.watchTimer = null;
    if (this.socket.destroyed) return;
    // Node reads a FIN that comes while nothing is buffered itself: 'end' has been and gone.
    if (this.socket.readableEnded) return void this.socket.destroy();
    this.early = new HeldBody();
    this.socket.on('data', this.keep);
    this.socket.once('end', this.gone);
    this.socket.resume();
  };

  private readonly keep = (chunk: Buffer): void => {
    this.earlyBytes += chunk.length;
    if (this.earlyBytes > MAX_EARLY_BYTES) return void this.socket.destroy();
    this.early?.push(chunk);
  };

  private readonly gone = (): void => {
    this.socket.destroy();
  };
}
