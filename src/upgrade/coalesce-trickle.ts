import type { Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import { ownCopy, unpinned } from '../common/own-copy.js';

/**
 * How many socket reads of a frame still arriving `ws` may hold before the
 * ones that came since the last check are looked at (and, if small, merged).
 */
export const TRICKLE_RUN_CHUNKS = 512;

/**
 * Reads averaging fewer bytes than this over a run of `TRICKLE_RUN_CHUNKS` are
 * merged into one Buffer. Reads of MSS size (1448 bytes on Ethernet, up to
 * 64 KiB on loopback) are left as they are: no copy on the normal path.
 */
export const SMALL_READ_BYTES = 1024;

/** What of `ws`'s frame receiver (lib/receiver.js) this reads; the version is pinned, the spec checks them. */
export interface ReceiverInternals {
  _buffers: Buffer[];
  _bufferedBytes: number;
  /** The fragments of a fragmented message so far; a new array for each message. */
  _fragments: Buffer[];
  _write(chunk: Buffer, encoding: BufferEncoding, cb: (err?: Error | null) => void): void;
}

const RUN = Symbol('wsproxy.trickleRun');
type Coalescing = ReceiverInternals & { [RUN]: number };
/** On a receiver's `_fragments` array: how many of its fragments were looked at, and where the unmerged ones start. */
const SEEN = Symbol('wsproxy.fragmentsSeen');
const MERGED = Symbol('wsproxy.fragmentsMerged');
type SeenFragments = Buffer[] & { [SEEN]?: number; [MERGED]?: number };

/**
 * Keeps the fragments of a fragmented message in about their bytes. `ws`
 * keeps a fragment read whole within one socket read as a view of that read,
 * and each fragment as its own Buffer until the message ends: a client padding
 * each 64 KiB read with control frames (which count toward no message) around
 * a 1-byte fragment made an unfinished message of 16 384 bytes pin 1 GiB. So
 * each new fragment that is a view of a read at least twice its size is
 * replaced by a copy of its bytes, and each run of `TRICKLE_RUN_CHUNKS`
 * fragments averaging under `SMALL_READ_BYTES` is merged into one (`ws`
 * concatenates the fragments when the message ends, however they are cut).
 * Each fragment is looked at once; returns how many were copied.
 */
export function tidyFragments(fragments: SeenFragments): number {
  let copied = 0;
  for (let i = fragments[SEEN] ?? 0; i < fragments.length; i++) {
    const own = unpinned(fragments[i]);
    if (own !== fragments[i]) {
      fragments[i] = own;
      copied++;
    }
  }
  const run = fragments.length - (fragments[MERGED] ?? 0);
  if (run >= TRICKLE_RUN_CHUNKS) {
    mergeSmallRun(fragments, run);
    fragments[MERGED] = fragments.length;
  }
  fragments[SEEN] = fragments.length;
  return copied;
}

/**
 * Merges the trailing `run` Buffers of `buffers` into one when they average
 * fewer than `SMALL_READ_BYTES`; returns true when it merged. Byte order and
 * the total are unchanged, so the receiver's state (`_bufferedBytes`, the frame
 * being parsed) stays right.
 */
export function mergeSmallRun(buffers: Buffer[], run: number): boolean {
  const start = buffers.length - run;
  let bytes = 0;
  for (let i = start; i < buffers.length; i++) bytes += buffers[i].length;
  if (bytes >= run * SMALL_READ_BYTES) return false;
  buffers.splice(start, run, ownCopy(buffers, start, bytes));
  return true;
}

/**
 * `_write` for a receiver: the prototype's, then, every `TRICKLE_RUN_CHUNKS`
 * reads held since the last check, a merge of those reads if they are small.
 * One increment and one comparison per read otherwise; each byte is copied at
 * most once (a merged Buffer is not part of a later run).
 */
function coalescingWrite(this: Coalescing, chunk: Buffer, encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
  // Counted before the prototype's `_write`, which may call back (and be called again) synchronously.
  this[RUN]++;
  (Object.getPrototypeOf(this) as ReceiverInternals)._write.call(this, chunk, encoding, cb);
  // Empty but while a fragmented message (rare: browsers send a message as one frame) is arriving.
  if (this._fragments.length !== 0) tidyFragments(this._fragments);
  const buffers = this._buffers;
  // A frame completed: what it took from the front is gone, and the run with it.
  if (this[RUN] > buffers.length) this[RUN] = buffers.length;
  if (this[RUN] < TRICKLE_RUN_CHUNKS) return;
  mergeSmallRun(buffers, this[RUN]);
  this[RUN] = 0;
}

/**
 * `ws` keeps every socket read of a frame still arriving as its own Buffer
 * until the whole payload is there (up to 262 144 reads, `maxBufferedChunks`).
 * Each read is a Buffer, an ArrayBuffer and a backing store: about 340 bytes
 * of the process's memory for a 1-byte read, so a client trickling one large
 * frame a byte at a time made the proxy hold about 260 times what it sent
 * (72 MiB per connection from 300 KB in 3 s). This merges each run of
 * `TRICKLE_RUN_CHUNKS` small reads into one Buffer, so a frame is held in
 * about 1.5 times its bytes however it is cut, and the frame still arrives
 * whole. The fragments of a fragmented message are kept as copies, not as
 * views pinning whole socket reads, and runs of small ones merged
 * (`tidyFragments`). `acceptingServer` installs it on every WebSocket the
 * proxy accepts. `ws` is pinned to one version (see package.json), the spec
 * checks the fields are where this expects them. Returns false when the
 * receiver is not there.
 */
export function coalesceTrickledFrames(ws: WebSocket): boolean {
  const receiver = (ws as unknown as { _receiver?: Writable & Partial<Coalescing> })._receiver;
  if (!receiver || !Array.isArray(receiver._buffers) || !Array.isArray(receiver._fragments) || typeof receiver._write !== 'function') return false;
  receiver[RUN] = 0;
  receiver._write = coalescingWrite as Writable['_write'];
  return true;
}
