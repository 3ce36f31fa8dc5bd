/**
 * The bytes of `buffers` from index `start` (`bytes` of them) in a Buffer of its own: never a slice of
 * Node's shared 8 KiB pool (what `Buffer.concat` and `Buffer.from` use for small sizes), which one
 * long-held slice would pin whole.
 */
export function ownCopy(buffers: readonly Uint8Array[], start = 0, bytes?: number): Buffer {
  let total = bytes ?? 0;
  if (bytes === undefined) for (let i = start; i < buffers.length; i++) total += buffers[i].length;
  const out = Buffer.allocUnsafeSlow(total);
  let offset = 0;
  for (let i = start; i < buffers.length; i++) {
    out.set(buffers[i], offset);
    offset += buffers[i].length;
  }
  return out;
}

/**
 * `buf`, or a copy of its bytes when it is a view of a buffer more than `ratio` times its size, which holding `buf`
 * would pin whole: `ws` hands out each message, and each fragment, as a view of the socket read it came in (up to
 * 64 KiB).
 */
export function unpinned<T extends Uint8Array>(buf: T, ratio = 2): T | Buffer {
  return buf.buffer.byteLength > ratio * buf.length ? ownCopy([buf]) : buf;
}
