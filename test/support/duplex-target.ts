import type { Socket } from 'node:net';
import { startTarget, type TestTarget } from './targets.js';

/** A target that streams `down` to each client (with backpressure) and keeps everything the client sends. */
export interface DuplexTarget extends TestTarget {
  /** The first connection's socket, once connected. */
  readonly socket: Promise<Socket>;
  /** Bytes received from the client so far. */
  received(): Buffer;
  receivedBytes(): number;
  /** Resolves when the client side ended (FIN) or the connection closed. */
  readonly ended: Promise<'end' | 'close'>;
  /** Resolves when the socket is fully closed. */
  readonly closed: Promise<void>;
}

export interface DuplexTargetOptions {
  /** Bytes to send on connect. */
  readonly down?: Buffer;
  /** End (FIN) after `down` has been written. */
  readonly endAfterDown?: boolean;
  /** Keep writing random-ish bytes forever (for backpressure tests); counts in `written`. */
  readonly endless?: boolean;
}

export async function duplexTarget(opts: DuplexTargetOptions = {}): Promise<DuplexTarget & { written: () => number; writableLength: () => number }> {
  const chunks: Buffer[] = [];
  let receivedBytes = 0;
  let written = 0;
  let current: Socket | null = null;
  let resolveSocket!: (s: Socket) => void;
  let resolveEnded!: (how: 'end' | 'close') => void;
  let resolveClosed!: () => void;
  const socket = new Promise<Socket>((r) => (resolveSocket = r));
  const ended = new Promise<'end' | 'close'>((r) => (resolveEnded = r));
  const closed = new Promise<void>((r) => (resolveClosed = r));
  const target = await startTarget((s) => {
    if (current) return;
    current = s;
    resolveSocket(s);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      receivedBytes += c.length;
    });
    s.on('end', () => resolveEnded('end'));
    s.on('close', () => {
      resolveEnded('close');
      resolveClosed();
    });
    if (opts.down) {
      const down = opts.down;
      let off = 0;
      const pump = (): void => {
        while (off < down.length && !s.destroyed) {
          const piece = down.subarray(off, off + 64 * 1024);
          off += piece.length;
          written += piece.length;
          if (!s.write(piece)) {
            s.once('drain', pump);
            return;
          }
        }
        if (off >= down.length && opts.endAfterDown) s.end();
      };
      pump();
    } else if (opts.endless) {
      const block = Buffer.alloc(64 * 1024, 0x5a);
      const pump = (): void => {
        while (!s.destroyed) {
          written += block.length;
          if (!s.write(block)) {
            s.once('drain', pump);
            return;
          }
        }
      };
      pump();
    }
  });
  return Object.assign(target, {
    socket,
    received: () => Buffer.concat(chunks),
    receivedBytes: () => receivedBytes,
    ended,
    closed,
    written: () => written,
    writableLength: () => current?.writableLength ?? 0,
  });
}
