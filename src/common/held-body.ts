import { CopyBlock } from './copy-block.js';
import { ownCopy, unpinned } from './own-copy.js';

/** Chunks smaller than this are copied into a Buffer of the body's own; larger ones are kept as they are. */
export const SMALL_BODY_CHUNK = 1024;
/** The smallest and largest Buffer small chunks are copied into. */
const TAIL_MIN = 256;
const TAIL_MAX = 64 * 1024;

/**
 * Bytes from an untrusted socket held whole until they are all there (a v1 request body), in about its bytes
 * however the requester cut it. Each chunk the request hands over is a Buffer
 * over the socket read it came in (an ArrayBuffer and a backing store each):
 * about 340 bytes of the process's memory for a 1-byte read, so a requester
 * (no token needed) sending its body a byte per TCP segment made the proxy
 * hold ~180 times the bytes the body budget counted. Small chunks are copied
 * into a Buffer of the body's own (growing with the body, so a small body
 * stays small), and a chunk that is a view of a read more than twice its size
 * is copied out of it; each byte is copied at most twice, and chunks of 1 KiB
 * and more that are most of their read (a Content-Length body's reads) are
 * kept without a copy.
 */
export class HeldBody {
  private readonly chunks: Uint8Array[] = [];
  /** Small chunks, copied. */
  private readonly tail = new CopyBlock();
  /** Bytes held. */
  bytes = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (chunk.length >= SMALL_BODY_CHUNK) {
      this.seal();
      this.chunks.push(unpinned(chunk));
    } else {
      if (!this.tail.fits(chunk.length)) {
        this.seal();
        // About as large as the body so far: what is held stays within about twice the body's bytes.
        this.tail.start(Math.min(TAIL_MAX, Math.max(TAIL_MIN, this.bytes, chunk.length)));
      }
      this.tail.append(chunk);
    }
    this.bytes += chunk.length;
  }

  /** The whole body (null when empty); the chunks are forgotten. */
  take(): Buffer | null {
    this.seal();
    const chunks = this.chunks.splice(0);
    const bytes = this.bytes;
    this.bytes = 0;
    if (chunks.length === 0) return null;
    if (chunks.length === 1) return Buffer.from(chunks[0].buffer, chunks[0].byteOffset, chunks[0].length);
    return Buffer.concat(chunks, bytes);
  }

  /** Forgets the body. */
  clear(): void {
    this.tail.take();
    this.chunks.length = 0;
    this.bytes = 0;
  }

  /** How many Buffers hold the body (for tests). */
  get pieces(): number {
    return this.chunks.length + (this.tail.used > 0 ? 1 : 0);
  }

  /** Bytes of the ArrayBuffers the body keeps alive (for tests). */
  get pinnedBytes(): number {
    let n = this.tail.size;
    for (const c of this.chunks) n += c.buffer.byteLength;
    return n;
  }

  /** The small chunks copied so far join the list: as they are when most of their Buffer is used, else an exact copy. */
  private seal(): void {
    const size = this.tail.size;
    const copied = this.tail.take();
    if (copied !== null) this.chunks.push(2 * copied.length >= size ? copied : ownCopy([copied]));
  }
}
