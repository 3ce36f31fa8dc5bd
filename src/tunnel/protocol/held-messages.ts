import { HeldBody } from '../../common/held-body.js';

/** A message (or a fragment of one) as it was received, as the stream's consumer is handed it. */
export interface HeldMessage {
  readonly t: 'message';
  readonly chunk: Uint8Array;
  readonly binary: boolean;
  readonly fin: boolean;
}

const EMPTY = new Uint8Array(0);

/**
 * A run of small WebSocket messages (or fragments) held in order for a paused
 * consumer, in about their bytes. Each payload is otherwise a view of the
 * WebSocket read it came in, with an event around it: ~100 to ~340 bytes of
 * the process's memory for a 1-byte message, and a whole read (up to 64 KiB)
 * pinned when other frames, long gone, shared it. Here the bytes are copied
 * into one `HeldBody` and each message is one number: its length and flags.
 * Once `shift` has begun, the run takes no more messages.
 */
export class HeldMessages {
  private readonly body = new HeldBody();
  /** Per message: its length × 4, plus 2 when binary, plus 1 when it ends its message. */
  private readonly marks: number[] = [];
  private next = 0;
  /** The body, once shifting began. */
  private taken: Uint8Array | null = null;
  private offset = 0;
  /** Payload bytes held. */
  bytes = 0;

  push(chunk: Uint8Array, binary: boolean, fin: boolean): void {
    this.body.push(chunk);
    this.marks.push(chunk.length * 4 + (binary ? 2 : 0) + (fin ? 1 : 0));
    this.bytes += chunk.length;
  }

  /** Messages held. */
  get count(): number {
    return this.marks.length - this.next;
  }

  /** The oldest message held (a view of the run's own Buffer), or undefined when none is. */
  shift(): HeldMessage | undefined {
    if (this.next === this.marks.length) return undefined;
    this.taken ??= this.body.take() ?? EMPTY;
    const mark = this.marks[this.next++];
    const length = mark >>> 2;
    const chunk = this.taken.subarray(this.offset, this.offset + length);
    this.offset += length;
    this.bytes -= length;
    return { t: 'message', chunk, binary: (mark & 2) !== 0, fin: (mark & 1) !== 0 };
  }
}
