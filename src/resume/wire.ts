/**
 * The resumable relay's wire format, shared by the proxy and the browser/Node
 * client (`ResumableRelay`). Pure TypeScript with no Node imports: it is part of
 * the ES module a browser loads. See docs/resume-protocol.md.
 *
 * Data is raw bytes; control messages are small JSON objects. How they travel
 * depends on the `control` query parameter:
 * - `text` (default): data in binary frames (only), control in text frames.
 * - `binary`: every frame is binary and starts with one marker byte:
 *   `0x00` data (the payload follows), `0x01` control (UTF-8 JSON follows).
 */

/** Send an ack once this many bytes arrived since the last one... */
export const ACK_EVERY_BYTES = 64 * 1024;
/** ...or this long after the first unacked byte, whichever comes first. */
export const ACK_EVERY_MS = 250;

/** Marker byte of a data frame with `control=binary`. */
export const MARK_DATA = 0x00;
/** Marker byte of a control frame with `control=binary`. */
export const MARK_CONTROL = 0x01;

/** How control messages are framed. */
export type ControlMode = 'text' | 'binary';

/** A session id: 128 bits as 32 lowercase hex digits. */
export const SESSION_ID_PATTERN = /^[0-9a-f]{32}$/;

/**
 * Largest control frame (its JSON, marker excluded) either side accepts; a bigger one is a protocol error.
 * Control messages are a few dozen bytes; parsing is not free (deeply nested JSON costs V8 about a
 * microsecond per byte), so a frame is measured before it is parsed.
 */
export const MAX_CONTROL_BYTES = 4096;

/** Largest byte count either side may report; beyond it a count is a protocol error. */
export const MAX_COUNT = Number.MAX_SAFE_INTEGER;

/**
 * Proxy → client, first frame on every attach. `id` is null and `windowS` 0 when
 * the proxy has resumption disabled: the connection is then a plain relay.
 * `received` (on a reattach) is the proxy's count of bytes received from the
 * client: the client replays from there.
 */
export interface SessionMessage {
  readonly type: 'session';
  readonly id: string | null;
  readonly windowS: number;
  readonly received?: number;
  /**
   * The largest message the proxy accepts (`MAX_MESSAGE_BYTES`). A client may
   * then send what it was given in one task as one message up to this size;
   * without it, one message per `send`.
   */
  readonly maxMessageBytes?: number;
}

/** Either way: the total number of data bytes received so far. */
export interface AckMessage {
  readonly type: 'ack';
  readonly received: number;
}

export type ControlMessage = SessionMessage | AckMessage;

/** A control frame that cannot be understood. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses a control message. Unknown `type`s yield null (ignored, for forward
 * compatibility); malformed JSON or fields throw `ProtocolError`.
 */
export function parseControl(text: string): ControlMessage | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new ProtocolError('control frame is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ProtocolError('control frame is not an object');
  const m = v as Record<string, unknown>;
  switch (m.type) {
    case 'ack':
      if (!isCount(m.received)) throw new ProtocolError('ack without a valid received count');
      return { type: 'ack', received: m.received };
    case 'session': {
      const id = m.id;
      if (id !== null && (typeof id !== 'string' || !SESSION_ID_PATTERN.test(id))) throw new ProtocolError('session frame with an invalid id');
      if (!isCount(m.windowS)) throw new ProtocolError('session frame without windowS');
      if (m.received !== undefined && !isCount(m.received)) throw new ProtocolError('session frame with an invalid received count');
      if (m.maxMessageBytes !== undefined && (!isCount(m.maxMessageBytes) || m.maxMessageBytes === 0)) throw new ProtocolError('session frame with an invalid maxMessageBytes');
      return {
        type: 'session',
        id,
        windowS: m.windowS,
        ...(m.received === undefined ? {} : { received: m.received }),
        ...(m.maxMessageBytes === undefined ? {} : { maxMessageBytes: m.maxMessageBytes }),
      };
    }
    default:
      return null;
  }
}

const encoder = new TextEncoder();

/** A control message as the payload of a frame: a string (text mode) or marker-prefixed bytes (binary mode). */
export function encodeControl(message: ControlMessage, mode: ControlMode): string | Uint8Array {
  const json = JSON.stringify(message);
  if (mode === 'text') return json;
  const body = encoder.encode(json);
  const out = new Uint8Array(body.length + 1);
  out[0] = MARK_CONTROL;
  out.set(body, 1);
  return out;
}

/**
 * The unacknowledged bytes one side has sent, in order, for replay after a
 * reattach. Positions are absolute byte counts since the session began; the
 * buffer holds `[start, end)`. Chunks are kept by reference, never copied; a
 * chunk that continues the last one held in the same memory extends it
 * instead of adding an entry, so the bookkeeping grows with the memory regions
 * held, not with the number of pushes (the proxy's reads land one after the
 * other in its slabs: a target dribbling single bytes would otherwise cost a
 * view object of ~100 bytes per byte held).
 */
export class ReplayBuffer {
  private chunks: Uint8Array[] = [];
  private head = 0;
  private startPos = 0;
  private endPos = 0;

  /**
   * @param maxChunkBytes Largest chunk an extension may make: a holder that sends each chunk as one message
   * (the client's replay, its plain fallback) caps it at its message size, or a `send` it split into
   * messages of that size (contiguous views of one buffer) would be merged back into one message too big
   * for the proxy's MAX_MESSAGE_BYTES.
   */
  constructor(private readonly maxChunkBytes = Infinity) {}

  /** Position of the oldest byte held (everything before it was acked). */
  get start(): number {
    return this.startPos;
  }

  /** Position after the newest byte: the total ever pushed. */
  get end(): number {
    return this.endPos;
  }

  /** Bytes held. */
  get size(): number {
    return this.endPos - this.startPos;
  }

  /** Chunks held (tests, diagnostics). */
  get chunkCount(): number {
    return this.chunks.length - this.head;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.endPos += chunk.length;
    const last = this.chunks.length > this.head ? this.chunks[this.chunks.length - 1]! : null;
    if (
      last !== null &&
      last.buffer === chunk.buffer &&
      last.byteOffset + last.byteLength === chunk.byteOffset &&
      last.byteLength + chunk.byteLength <= this.maxChunkBytes
    ) {
      // The same bytes, one view: a plain Uint8Array (consumers take any view; no Node Buffer here).
      this.chunks[this.chunks.length - 1] = new Uint8Array(last.buffer, last.byteOffset, last.byteLength + chunk.byteLength);
      return;
    }
    this.chunks.push(chunk);
  }

  /** Drops every byte before position `n` (an ack). Positions outside `[start, end]` are the caller's to refuse. */
  ackTo(n: number): void {
    let drop = Math.min(n, this.endPos) - this.startPos;
    while (drop > 0 && this.head < this.chunks.length) {
      const c = this.chunks[this.head];
      if (c.length <= drop) {
        drop -= c.length;
        this.startPos += c.length;
        this.head++;
      } else {
        this.chunks[this.head] = c.subarray(drop);
        this.startPos += drop;
        drop = 0;
      }
    }
    // Compact now and then so the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  /** The held bytes from position `n` (within `[start, end]`) to the end, as chunks. */
  chunksFrom(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let pos = this.startPos;
    for (let i = this.head; i < this.chunks.length; i++) {
      const c = this.chunks[i];
      const next = pos + c.length;
      if (next > n) out.push(pos >= n ? c : c.subarray(n - pos));
      pos = next;
    }
    return out;
  }
}

/**
 * Decides when to acknowledge received bytes: at once when `ACK_EVERY_BYTES`
 * have come in since the last ack, otherwise `ACK_EVERY_MS` after the first
 * unacked byte. `send(total)` is called with the total received.
 */
export class AckScheduler {
  private received = 0;
  private acked = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private held = false;

  constructor(private readonly send: (received: number) => void) {}

  /** Total bytes received so far. */
  get total(): number {
    return this.received;
  }

  /** Counts `n` received bytes and acks when due. */
  add(n: number): void {
    this.received += n;
    this.maybeAck();
  }

  /** Bytes received and not yet acknowledged (all of them while acks are held). */
  get unacked(): number {
    return this.received - this.acked;
  }

  /** Sets the count already known to the peer (the session frame carries it on a reattach). */
  resetAcked(n: number): void {
    this.acked = n;
    this.clearTimer();
    this.maybeAck();
  }

  /** Whether acks are held back (`hold` without `release`). */
  get holding(): boolean {
    return this.held;
  }

  /** Holds acks back (the reader is slow: the peer keeps its bytes and stops sending when its buffer is full). */
  hold(): void {
    this.held = true;
    this.clearTimer();
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    this.maybeAck();
  }

  /** Sends an ack now if anything is unacked (and not held). */
  flush(): void {
    this.clearTimer();
    if (!this.held && this.received > this.acked) {
      this.acked = this.received;
      this.send(this.received);
    }
  }

  stop(): void {
    this.clearTimer();
  }

  private maybeAck(): void {
    if (this.held || this.received <= this.acked) return;
    if (this.received - this.acked >= ACK_EVERY_BYTES) {
      this.flush();
    } else if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush();
      }, ACK_EVERY_MS);
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}
