/**
 * Peers that keep stopping and starting, for tests of streams paused and resumed many times over: a writer
 * that sends segments of many sizes, a reader that pauses now and then, a connection that fills in bursts.
 * Their choices come from a seeded generator (`jitter()`), so a run that failed can draw them again.
 */
import type { Readable, Writable } from 'node:stream';
import { mulberry32, testSeed } from './seeded-random.js';

/** What a `readWithPauses` reader has read. */
export interface PausingReader {
  bytes(): number;
  /** Everything read, in order. */
  received(): Buffer;
}

/** One test's jittering peers, all drawing from one generator seeded with `seed`. */
export interface Jitter {
  readonly seed: number;
  /** For a failure message: the seed, and how to draw the same choices again. */
  readonly replay: string;
  /** A number in [0, 1), as Math.random, from this jitter's generator. */
  random(): number;
  /** Runs `fn` a little later, by one of the means stream callbacks use: the next tick, the next turn of the loop, or (one time in ten) a timer of 0–2 ms. */
  soon(fn: () => void): void;
  /**
   * Writes `payload` to `sink` in pieces of 1 byte to `largest` (half of them 64 bytes at most), one per turn
   * of the loop (after 'drain' when `sink` asks to wait), so that the peer reads segments of many sizes,
   * coalesced only while it does not read. Resolves once all of it is handed to `sink` (not ended).
   */
  writeInPieces(sink: Writable, payload: Buffer, largest?: number): Promise<void>;
  /** Reads `source`, pausing it after about `share` of its reads and resuming it `soon` after. */
  readWithPauses(source: Readable, share: number): PausingReader;
  /**
   * Holds what is written to `socket` back (`cork`) for 0–2 ms at a time, a tick or a turn apart, as a
   * connection whose peer reads in bursts: writes pile up while it is corked and go out at once after.
   * Returns a function that stops it, leaving the socket uncorked.
   */
  corkNowAndThen(socket: Writable): () => void;
}

/** A test's jitter, seeded with the run's seed (TEST_SEED, else a fixed default) unless given another. */
export function jitter(seed: number = testSeed()): Jitter {
  const random = mulberry32(seed);

  const soon = (fn: () => void): void => {
    const r = random();
    if (r < 0.45) process.nextTick(fn);
    else if (r < 0.9) setImmediate(fn);
    else setTimeout(fn, Math.floor(random() * 3));
  };

  const writeInPieces = (sink: Writable, payload: Buffer, largest = 4096): Promise<void> => {
    let off = 0;
    return new Promise((resolve) => {
      const next = (): void => {
        if (off >= payload.length) return resolve();
        const piece = payload.subarray(off, off + 1 + Math.floor(random() * (random() < 0.5 ? 64 : largest)));
        off += piece.length;
        if (sink.write(piece)) setImmediate(next);
        else sink.once('drain', next);
      };
      next();
    });
  };

  const readWithPauses = (source: Readable, share: number): PausingReader => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    source.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (random() < share) {
        source.pause();
        soon(() => source.resume());
      }
    });
    return { bytes: () => bytes, received: () => Buffer.concat(chunks) };
  };

  const corkNowAndThen = (socket: Writable): (() => void) => {
    let stopped = false;
    let corked = false;
    const hold = (): void => {
      if (stopped) return;
      socket.cork();
      corked = true;
      setTimeout(() => {
        if (!corked) return;
        corked = false;
        socket.uncork();
        soon(hold);
      }, Math.floor(random() * 3));
    };
    soon(hold);
    return () => {
      stopped = true;
      if (corked) socket.uncork();
      corked = false;
    };
  };

  return { seed, replay: `jitter seed ${seed}: TEST_SEED=${seed} draws it again`, random, soon, writeInPieces, readWithPauses, corkNowAndThen };
}

/** Counts the times `stream` stopped flowing (its 'pause' events). */
export function countPauses(stream: Readable): () => number {
  let pauses = 0;
  stream.on('pause', () => pauses++);
  return () => pauses;
}
