import { once } from 'node:events';
import type { Socket } from 'node:net';

/** One unmasked (server) WebSocket frame. */
export interface RawFrame {
  readonly opcode: number;
  readonly payload: Buffer;
}

/** The whole frames at the start of `acc`, and the bytes after them. */
function splitFrames(acc: Buffer): { frames: RawFrame[]; rest: Buffer } {
  const frames: RawFrame[] = [];
  while (acc.length >= 2) {
    let len = acc[1] & 0x7f;
    let off = 2;
    if (len === 126) [len, off] = [acc.readUInt16BE(2), 4];
    else if (len === 127) [len, off] = [Number(acc.readBigUInt64BE(2)), 10];
    if (acc.length < off + len) break;
    frames.push({ opcode: acc[0] & 0x0f, payload: acc.subarray(off, off + len) });
    acc = acc.subarray(off + len);
  }
  return { frames, rest: acc };
}

/** Reads from `socket` until `count` frames arrived (unmasked server frames); `acc`: their bytes already read. */
export async function readFrames(socket: Socket, count: number, acc: Buffer = Buffer.alloc(0)): Promise<RawFrame[]> {
  const out: RawFrame[] = [];
  for (;;) {
    const { frames, rest } = splitFrames(acc);
    out.push(...frames);
    if (out.length >= count) return out;
    acc = Buffer.concat([rest, (await once(socket, 'data'))[0] as Buffer]);
  }
}

/**
 * Reads from `socket` until `n` bytes of WebSocket frames' payloads arrived (unmasked server frames);
 * `acc`: bytes of those frames already read.
 */
export async function readPayload(socket: Socket, n: number, acc: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  const out: Buffer[] = [];
  let got = 0;
  for (;;) {
    const { frames, rest } = splitFrames(acc);
    for (const f of frames) {
      if (f.opcode !== 0x2) continue;
      out.push(f.payload);
      got += f.payload.length;
    }
    if (got >= n) return Buffer.concat(out);
    acc = Buffer.concat([rest, (await once(socket, 'data'))[0] as Buffer]);
  }
}
