import { SLAB_BYTES } from '../resume/slab-store.js';

/**
 * Size of the buffer a direct reader's target socket reads into: one slab, so
 * `SlabStore` always copies a read (it keeps larger chunks by reference, which
 * here would point into the shared buffer).
 */
export const DIRECT_READ_BYTES = SLAB_BYTES;

/** Shared by every direct reader: each read is consumed (copied) before the next one starts. */
const sharedReadBuffer = Buffer.allocUnsafeSlow(DIRECT_READ_BYTES);

/**
 * Reads a target socket straight into one process-wide buffer (`net.connect`'s
 * `onread`), for a consumer that copies every read anyway: a resumable session
 * keeps its bytes in slabs. Reads of up to 256 KiB, not the 64 KiB a socket's
 * own buffers give, mean fewer, larger WebSocket frames and so fewer acks,
 * with no allocation per read.
 *
 * The dialer pauses such a socket once connected; `start` hands reads to the
 * consumer and resumes it. A chunk is valid only during the call.
 */
export class DirectReader {
  /**
   * Where reads complete synchronously into the buffer they were given
   * (Linux, macOS). On Windows libuv may post reads into the buffer ahead of
   * time, and two sockets would then share it: plain 'data' events there.
   */
  static readonly supported = process.platform !== 'win32';

  private sink: ((chunk: Buffer) => void) | null = null;

  /** The `onread` option for `net.connect`. */
  readonly onread = {
    buffer: sharedReadBuffer,
    callback: (length: number, buffer: Uint8Array): boolean => {
      this.sink?.((buffer as Buffer).subarray(0, length));
      // Pausing goes through socket.pause(), which knows about onread sockets.
      return true;
    },
  };

  /** Delivers every further read to `sink` (copy it before returning). */
  start(sink: (chunk: Buffer) => void): void {
    this.sink = sink;
  }
}
