/**
 * Small pieces of bytes copied one after another into a Buffer of its own
 * (never a slice of Node's shared pool), so a run of small reads or messages
 * costs its bytes and one Buffer, not a Buffer each. The owner starts a
 * block, appends while the pieces fit, and takes what was copied.
 */
export class CopyBlock {
  private block: Buffer | null = null;
  private filled = 0;

  /** Bytes copied into the current block. */
  get used(): number {
    return this.filled;
  }

  /** Size of the current block; 0 with none. */
  get size(): number {
    return this.block?.length ?? 0;
  }

  /** Whether `bytes` more fit in the current block (never with none). */
  fits(bytes: number): boolean {
    return this.block !== null && this.filled + bytes <= this.block.length;
  }

  /** Starts a block of `size` bytes; what the current one holds must have been taken. */
  start(size: number): void {
    this.block = Buffer.allocUnsafeSlow(size);
    this.filled = 0;
  }

  /** Copies `chunk` in after the bytes before it; it must fit. */
  append(chunk: Uint8Array): void {
    this.block!.set(chunk, this.filled);
    this.filled += chunk.length;
  }

  /** What was copied in, as a view of the block (null when nothing was); the block is let go. */
  take(): Buffer | null {
    const block = this.block;
    const used = this.filled;
    this.block = null;
    this.filled = 0;
    return block !== null && used > 0 ? block.subarray(0, used) : null;
  }
}
