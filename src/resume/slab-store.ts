/**
 * Where a resumable session keeps the target's bytes until the client acks
 * them: copied into fixed-size slabs recycled through a shared pool.
 *
 * Why copy: a chunk read from the target is a fresh buffer with its own
 * off-heap backing store. Kept until acked, such buffers outlive V8's young
 * generation, and off-heap bytes piling up in the old generation trigger full
 * garbage collections: a quarter of the proxy's CPU at full speed. Copies into
 * long-lived slabs (a memcpy per read) let every read buffer die young. Where
 * the target is read through a `DirectReader` there is no read buffer at all:
 * reads land in one shared buffer and this copy is the only one.
 */

/** Size of one slab; a read from a target is at most this (`DIRECT_READ_BYTES`). */
export const SLAB_BYTES = 256 * 1024;
/** Free slabs kept for reuse across sessions (the rest are left to the GC). */
const POOL_MAX = 64;

const pool: Buffer[] = [];

function takeSlab(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES);
}

interface Slab {
  readonly buf: Buffer;
  /** Stream position after the slab's last byte. */
  end: number;
  /** False once a socket other than the current one may still be writing from it. */
  recyclable: boolean;
}

/**
 * Slabs of one session, oldest first; positions are the session's stream
 * positions. A slab returns to the shared pool only when no socket can still
 * be writing from it: the client acked all of it *and* the current socket's
 * writes have completed past its end (`flushedTo`). An ack alone is not
 * enough: a client can ack bytes still queued in the proxy's send buffer (it
 * knows what its own target sent), and a slab recycled under a pending write
 * would carry another session's bytes to it. Acked slabs wait in `retired`
 * until the writes pass them. Slabs of a socket being replaced (`disown`) are
 * left to the GC.
 */
export class SlabStore {
  private readonly slabs: Slab[] = [];
  /** Acked slabs the current socket may still be writing from, oldest first. */
  private readonly retired: Slab[] = [];
  /** Stream position up to which the current socket's writes have completed. */
  private flushed = 0;
  private used = SLAB_BYTES;
  private pos = 0;

  /** Copies `chunk` (the stream's next bytes) and returns the copy as one or two views. */
  append(chunk: Buffer): Buffer[] {
    if (chunk.length > SLAB_BYTES) {
      // Never from a target read (at most a slab); kept as it is.
      this.pos += chunk.length;
      return [chunk];
    }
    const views: Buffer[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.used === SLAB_BYTES) {
        this.slabs.push({ buf: takeSlab(), end: this.pos, recyclable: true });
        this.used = 0;
      }
      const slab = this.slabs[this.slabs.length - 1]!;
      const n = Math.min(chunk.length - off, SLAB_BYTES - this.used);
      chunk.copy(slab.buf, this.used, off, off + n);
      views.push(slab.buf.subarray(this.used, this.used + n));
      this.used += n;
      this.pos += n;
      slab.end = this.pos;
      off += n;
    }
    return views;
  }

  /** Everything before stream position `start` is acked: slabs wholly before it are released once written. */
  releaseBefore(start: number): void {
    while (this.slabs.length > 0 && this.slabs[0]!.end <= start) {
      const slab = this.slabs.shift()!;
      if (slab.recyclable) this.retired.push(slab);
    }
    // An idle session holds no slab: the next byte starts a fresh one.
    if (this.slabs.length === 0) this.used = SLAB_BYTES;
    this.recycleWritten();
  }

  /** The current socket's writes have completed up to stream position `pos`. */
  flushedTo(pos: number): void {
    if (pos <= this.flushed) return;
    this.flushed = pos;
    this.recycleWritten();
  }

  /** The socket that wrote from the current slabs is being replaced while it may still be writing. */
  disown(): void {
    for (const s of this.slabs) s.recyclable = false;
    this.retired.length = 0;
    this.flushed = 0;
    this.used = SLAB_BYTES;
  }

  /** The socket that wrote from the slabs has closed (no write can be pending): the acked ones go back. */
  socketClosed(): void {
    for (const s of this.retired.splice(0)) this.recycle(s);
    this.flushed = 0;
  }

  /** The session ended and its socket is closed: every slab is released. */
  releaseAll(): void {
    for (const s of this.retired.splice(0)) this.recycle(s);
    for (const s of this.slabs.splice(0)) this.recycle(s);
    this.used = SLAB_BYTES;
  }

  /**
   * Memory the held slabs take, used or not: a replaced socket's last slab is
   * never filled further, so a client replacing its socket byte by byte would
   * hold a whole slab per byte while the byte count stays small.
   */
  get heldBytes(): number {
    return this.slabs.length * SLAB_BYTES;
  }

  /** Slabs waiting for writes (tests, diagnostics). */
  get retiredCount(): number {
    return this.retired.length;
  }

  private recycleWritten(): void {
    let n = 0;
    while (n < this.retired.length && this.retired[n]!.end <= this.flushed) this.recycle(this.retired[n++]!);
    if (n > 0) this.retired.splice(0, n);
  }

  private recycle(slab: Slab): void {
    if (slab.recyclable && pool.length < POOL_MAX) pool.push(slab.buf);
  }
}
