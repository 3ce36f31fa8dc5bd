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
