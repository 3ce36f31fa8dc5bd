import { isUtf8 } from 'node:buffer';

/**
 * Checks that a text message arriving in fragments is valid UTF-8 (RFC 6455
 * §5.6), carrying a character split across fragments over to the next one.
 */
export class Utf8Stream {
  private carry: Buffer | null = null;

  /**
   * Feeds one fragment; false as soon as the text cannot be valid UTF-8. With
   * `fin` the message must also end on a character boundary; the stream is
   * then ready for the next message.
   */
  push(fragment: Uint8Array, fin: boolean): boolean {
    let bytes = Buffer.from(fragment.buffer, fragment.byteOffset, fragment.byteLength);
    if (this.carry) bytes = Buffer.concat([this.carry, bytes]);
    this.carry = null;
    if (fin) return isUtf8(bytes);
    const cut = incompleteTail(bytes);
    if (cut > 0) {
      this.carry = Buffer.from(bytes.subarray(bytes.length - cut));
      bytes = bytes.subarray(0, bytes.length - cut);
    }
    return isUtf8(bytes);
  }
}

/** How many bytes at the end of `b` start a character that needs more bytes than follow it (0–3). */
function incompleteTail(b: Buffer): number {
  for (let i = 1; i <= Math.min(3, b.length); i++) {
    const byte = b[b.length - i]!;
    if ((byte & 0xc0) === 0x80) continue;
    const needs = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return needs > i ? i : 0;
  }
  return 0;
}
