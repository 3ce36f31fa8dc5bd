/**
 * A resumable-relay client spoken by hand (text control frames), for tests that
 * check the wire protocol or misbehave on purpose (never ack, reuse ids).
 */
import { WebSocket, type ClientOptions } from 'ws';
import { closed, track } from './ws-client.js';

export interface SessionFrame {
  readonly type: 'session';
  readonly id: string | null;
  readonly windowS: number;
  readonly received?: number;
  readonly maxMessageBytes?: number;
}

export class RawResumeClient {
  /** Data bytes received, in order. */
  readonly chunks: Buffer[] = [];
  bytes = 0;
  /** Control messages received, parsed, in order. */
  readonly controls: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        this.chunks.push(data);
        this.bytes += data.length;
      } else {
        this.controls.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    ws.on('close', () => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Opens `url` (a `/relay` URL with `resume=...`) and waits for the session frame. */
  static async open(url: string, options: ClientOptions = {}): Promise<{ client: RawResumeClient; session: SessionFrame }> {
    const client = await RawResumeClient.connect(url, options);
    const session = (await client.nextControl('session')) as unknown as SessionFrame;
    return { client, session };
  }

  /**
   * Opens `url` and resolves once open. Listening starts before the handshake
   * ends: the session frame may arrive together with the handshake response.
   */
  static connect(url: string, options: ClientOptions = {}): Promise<RawResumeClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
      track(ws);
      const client = new RawResumeClient(ws);
      ws.once('open', () => {
        ws.off('error', reject);
        resolve(client);
      });
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
      ws.once('error', reject);
    });
  }

  data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Resolves when `cond` holds, checked after every message. */
  async until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The first control message of `type` not taken yet. */
  async nextControl(type: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await this.until(
      () => {
        const i = this.controls.findIndex((m) => m.type === type);
        if (i === -1) return false;
        found = this.controls.splice(i, 1)[0];
        return true;
      },
      `a ${type} frame`,
      timeoutMs,
    );
    return found!;
  }

  ack(received = this.bytes): void {
    this.ws.send(JSON.stringify({ type: 'ack', received }));
  }

  send(data: Buffer): void {
    this.ws.send(data, { binary: true });
  }

  /** Drops the connection without a close frame (the proxy sees 1006). */
  drop(): void {
    this.ws.terminate();
  }

  closed(): Promise<{ code: number; reason: string }> {
    return closed(this.ws);
  }
}
