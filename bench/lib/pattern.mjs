/**
 * The byte stream every bulk figure sends: a fixed pseudo-random 1 MiB block
 * repeated. The receiver compares each chunk with the block at the same stream
 * offset (`Buffer.compare`, a memcmp), so every byte is checked exactly, for
 * less CPU than any checksum, whatever the chunk boundaries are.
 */

/** Length of the repeated block. Chunks handed out are at most this long. */
export const BLOCK = 1024 * 1024;

/** The block twice in a row, so any slice of up to BLOCK bytes starting inside the first copy needs no wrap. */
const DOUBLE = (() => {
  const b = Buffer.allocUnsafe(2 * BLOCK);
  let x = 0x9e3779b9;
  for (let i = 0; i < BLOCK; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  b.copy(b, BLOCK, 0, BLOCK);
  return b;
})();

/** The `len` bytes of the stream starting at `offset` (a view, no copy). `len <= BLOCK`. */
export function slice(offset, len) {
  const pos = offset % BLOCK;
  return DOUBLE.subarray(pos, pos + len);
}

/** Checks a received stream against the pattern. */
export class PatternCheck {
  constructor() {
    /** Bytes seen so far. */
    this.offset = 0;
    /** Stream offset of the first wrong byte's chunk, or -1. */
    this.badAt = -1;
  }

  /** Feeds one received chunk; returns false once any byte differed. */
  feed(chunk) {
    let i = 0;
    while (i < chunk.length) {
      const pos = this.offset % BLOCK;
      const n = Math.min(chunk.length - i, BLOCK);
      if (this.badAt === -1 && chunk.compare(DOUBLE, pos, pos + n, i, i + n) !== 0) this.badAt = this.offset;
      i += n;
      this.offset += n;
    }
    return this.badAt === -1;
  }
}

/** Bulk protocol header: 1 byte direction ('D' target→client, 'U' client→target) and the byte count (u64 BE). */
export function bulkHeader(dir, bytes) {
  const h = Buffer.alloc(9);
  h.write(dir, 0, 'latin1');
  h.writeBigUInt64BE(BigInt(bytes), 1);
  return h;
}

/** Upload verdict the target sends back: 1 byte (1 = every byte matched) and the count it received (u64 BE). */
export function uploadVerdict(ok, bytes) {
  const v = Buffer.alloc(9);
  v[0] = ok ? 1 : 0;
  v.writeBigUInt64BE(BigInt(bytes), 1);
  return v;
}
