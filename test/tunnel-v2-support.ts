/**
 * Helpers for the tunnel protocol v2 tests: a raw v2 client that speaks frames
 * by hand (to check the wire and to misbehave on purpose), and small HTTP
 * helpers that record when bytes arrive.
 */
import { request, type IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import { V2_INITIAL_WINDOW, decodeFrame, encodeWindowUpdate, type V2Frame } from '../src/tunnel/protocol/v2.js';

/** A v2 tunnel client speaking frames by hand; never grants credit unless told to. */
export class RawV2Tunnel {
  readonly frames: V2Frame[] = [];
  /** Every binary message as received. */
  readonly raw: Buffer[] = [];
  /** Credit the proxy granted per stream (initial window + WINDOW_UPDATEs). */
  readonly credit = new Map<number, number>();
  private waiters: { pred: (f: V2Frame) => boolean; resolve: (f: V2Frame) => void }[] = [];
  private readonly consumed = new Set<V2Frame>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return;
      this.raw.push(data);
      const d = decodeFrame(data);
      if (!d.ok) return;
      const f = d.frame;
      this.frames.push(f);
      if (f.type === 'open') this.credit.set(f.stream, V2_INITIAL_WINDOW);
      if (f.type === 'window') this.credit.set(f.stream, (this.credit.get(f.stream) ?? V2_INITIAL_WINDOW) + f.increment);
      this.waiters = this.waiters.filter((w) => {
        if (!this.consumed.has(f) && w.pred(f)) {
          this.consumed.add(f);
          w.resolve(f);
          return false;
        }
        return true;
      });
    });
  }

  static async open(wsUrl: string, query = '?v=2'): Promise<{ tunnel: RawV2Tunnel; ready: V2Frame & { type: 'ready' }; readyRaw: Buffer }> {
    const ws = new WebSocket(`${wsUrl}/tunnel${query}`, { perMessageDeflate: false });
    const tunnel = new RawV2Tunnel(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    const ready = (await tunnel.next((f) => f.type === 'ready')) as V2Frame & { type: 'ready' };
    return { tunnel, ready, readyRaw: tunnel.raw[0] };
  }

  /** The next frame (by arrival) matching `pred` that no earlier `next` took. */
  next(pred: (f: V2Frame) => boolean, timeoutMs = 5000, what = 'frame'): Promise<V2Frame> {
    for (const f of this.frames) {
      if (!this.consumed.has(f) && pred(f)) {
        this.consumed.add(f);
        return Promise.resolve(f);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }

  /** The next OPEN frame. */
  async nextOpen(timeoutMs?: number): Promise<V2Frame & { type: 'open' }> {
    return (await this.next((f) => f.type === 'open', timeoutMs, 'OPEN')) as V2Frame & { type: 'open' };
  }

  /** DATA payload received on `stream` so far, concatenated. */
  dataFor(stream: number): Buffer {
    return Buffer.concat(this.frames.filter((f) => f.type === 'data' && f.stream === stream).map((f) => (f as { payload: Uint8Array }).payload));
  }

  /** Whether an END (DATA with END) arrived on `stream`. */
  ended(stream: number): boolean {
    return this.frames.some((f) => f.type === 'data' && f.stream === stream && f.end);
  }

  send(frame: Uint8Array): void {
    this.ws.send(frame, { binary: true });
  }

  /** Gives the proxy `bytes` more credit on `stream`. */
  grant(stream: number, bytes: number): void {
    this.send(encodeWindowUpdate(stream, bytes));
  }

  /** Grants `stream` 512 KiB at a time, every few milliseconds, until `done()` says what was wanted arrived. */
  async grantUntil(stream: number, done: () => boolean): Promise<void> {
    while (!done()) {
      this.grant(stream, 512 * 1024);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
    });
  }
}

/** A response whose body chunks are recorded with their arrival time. */
export interface TimedResponse {
  readonly res: IncomingMessage;
  readonly chunks: { at: number; data: Buffer }[];
  /** Resolves with the whole body when it ends (rejects if the response is cut off). */
  readonly done: Promise<Buffer>;
}

/** GET through the app with a tunnel Host; resolves once the response head is there. */
export function timedGet(port: number, host: string, path = '/'): Promise<TimedResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      const chunks: { at: number; data: Buffer }[] = [];
      const done = new Promise<Buffer>((ok, fail) => {
        res.on('data', (c: Buffer) => chunks.push({ at: Date.now(), data: c }));
        res.on('end', () => ok(Buffer.concat(chunks.map((c) => c.data))));
        res.on('error', fail);
        res.on('aborted', () => fail(new Error('response aborted')));
      });
      done.catch(() => undefined);
      resolve({ res, chunks, done });
    });
    req.on('error', reject);
    req.end();
  });
}
