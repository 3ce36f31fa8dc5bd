import { once } from 'node:events';
import type { Socket } from 'node:net';

/**
 * Reads from `socket` until `n` bytes of WebSocket frames' payloads arrived (unmasked server frames);
 * `acc`: bytes of those frames already read.
 */
export async function readPayload(socket: Socket, n: number, acc: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  const out: Buffer[] = [];
  let got = 0;
  for (;;) {
    while (acc.length >= 2) {
      let len = acc[1] & 0x7f;
      let off = 2;
      if (len === 126) [len, off] = [acc.readUInt16BE(2), 4];
      else if (len === 127) [len, off] = [Number(acc.readBigUInt64BE(2)), 10];
      if (acc.length < off + len) break;
      if ((acc[0] & 0x0f) === 0x2) {
        out.push(acc.subarray(off, off + len));
        got += len;
      }
      acc = acc.subarray(off + len);
    }
    if (got >= n) return Buffer.concat(out);
    acc = Buffer.concat([acc, (await once(socket, 'data'))[0] as Buffer]);
  }
}
