/** RFC 6455 §5.2 opcodes. The reserved ones (0x3–0x7, 0xb–0xf) go in as plain numbers, for tests of hostile frames. */
export const Opcode = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

/** Bits of the payload length field (RFC 6455 §5.2): 7 (0–125), 16 (after a 126) or 64 (after a 127). */
export type LengthBits = 7 | 16 | 64;

/** A masking key: 4 bytes. */
export type MaskKey = ArrayLike<number>;

/**
 * The masking key of RFC 6455 §5.7's examples, and the builders' default. Not
 * zero, so a frame that passes has really been unmasked by the receiver (`ws`
 * skips unmasking under an all-zero key); fixed, so a failing test sends the
 * same bytes again.
 */
export const RFC_MASK_KEY: MaskKey = Object.freeze([0x37, 0xfa, 0x21, 0x3d]);

/** An all-zero key: the payload goes on the wire as it is. */
export const ZERO_MASK_KEY: MaskKey = Object.freeze([0, 0, 0, 0]);

/** The fields of a frame header, each settable to what RFC 6455 forbids. */
export interface FrameHeaderFields {
  /** 4 bits. */
  readonly opcode: number;
  /** FIN: the last frame of its message. Default true. */
  readonly fin?: boolean;
  /** RSV1–RSV3 as one 3-bit number (RSV1 is 4). Default 0; anything else, without an extension agreed, breaks RFC 6455. */
  readonly rsv?: number;
  /** The payload length the header declares; the bytes that follow need not match. A bigint reaches past 2^53 (the top bit of a 64-bit length breaks RFC 6455). */
  readonly length: number | bigint;
  /** Default: the shortest that holds `length`. A longer one is a non-minimal encoding, which RFC 6455 §5.2 forbids. */
  readonly lengthBits?: LengthBits;
  /** Default `RFC_MASK_KEY`. `null`: the MASK bit clear and no key, as a server's frames are (a client's then breaks RFC 6455 §5.1). */
  readonly maskKey?: MaskKey | null;
}

const LONGEST: Record<LengthBits, bigint> = { 7: 125n, 16: 0xffffn, 64: 0xffff_ffff_ffff_ffffn };
const EXTENDED_LENGTH_BYTES: Record<LengthBits, number> = { 7: 0, 16: 2, 64: 8 };

const shortestBits = (length: bigint): LengthBits => (length <= LONGEST[7] ? 7 : length <= LONGEST[16] ? 16 : 64);

/**
 * A WebSocket frame header exactly as `fields` say (RFC 6455 §5.2), mask key
 * included; the payload is not. Throws a RangeError on a field its bits cannot
 * hold (a 5-bit opcode, a 200-byte length in 7 bits, a 3-byte key).
 */
export function frameHeader(fields: FrameHeaderFields): Buffer {
  const { opcode, fin = true, rsv = 0, maskKey = RFC_MASK_KEY } = fields;
  const length = BigInt(fields.length);
  const bits = fields.lengthBits ?? shortestBits(length);
  if (!Number.isInteger(opcode) || opcode < 0 || opcode > 0xf) throw new RangeError(`opcode ${opcode} is not 4 bits`);
  if (!Number.isInteger(rsv) || rsv < 0 || rsv > 7) throw new RangeError(`rsv ${rsv} is not 3 bits`);
  if (length < 0n || length > LONGEST[bits]) throw new RangeError(`length ${length} does not fit the ${bits}-bit length field`);
  if (maskKey !== null && maskKey.length !== 4) throw new RangeError(`a mask key is 4 bytes, not ${maskKey.length}`);
  const keyAt = 2 + EXTENDED_LENGTH_BYTES[bits];
  const head = Buffer.alloc(keyAt + (maskKey === null ? 0 : 4));
  head[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  head[1] = (maskKey === null ? 0 : 0x80) | (bits === 7 ? Number(length) : bits === 16 ? 126 : 127);
  if (bits === 16) head.writeUInt16BE(Number(length), 2);
  if (bits === 64) head.writeBigUInt64BE(length, 2);
  if (maskKey !== null) head.set(maskKey, keyAt);
  return head;
}

/** Options of `clientFrame`: the header's fields other than the opcode and the length, which the payload gives. */
export type ClientFrameOptions = Omit<FrameHeaderFields, 'opcode' | 'length'>;

/**
 * A whole client frame (RFC 6455 §5.2): its header and `payload` (a string as
 * UTF-8) masked with `options.maskKey`, `RFC_MASK_KEY` by default. One frame:
 * a fragmented message is one call a fragment (FIN clear on all but the last,
 * `Opcode.CONTINUATION` on all but the first).
 */
export function clientFrame(opcode: number, payload: Uint8Array | string, options: ClientFrameOptions = {}): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const maskKey = options.maskKey === undefined ? RFC_MASK_KEY : options.maskKey;
  const head = frameHeader({ ...options, opcode, length: bytes.length, maskKey });
  return Buffer.concat([head, maskKey === null ? bytes : maskPayload(bytes, maskKey)]);
}

/**
 * `payload` masked with `maskKey` (RFC 6455 §5.3), `RFC_MASK_KEY` by default:
 * the bytes that follow a `frameHeader` with that key, for a test that writes
 * the header and the payload apart (a byte per write, or fewer bytes than the
 * header declares).
 */
export function maskPayload(payload: Uint8Array, maskKey: MaskKey = RFC_MASK_KEY): Buffer {
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i] ^ maskKey[i % 4];
  return masked;
}
