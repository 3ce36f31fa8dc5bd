/** Chunks smaller than this are joined; larger ones (a Content-Length body's reads) go on as they are. */
const JOIN_BELOW = 4 * 1024;
/** A join goes out once it holds this much. */
const JOIN_MAX = 16 * 1024;

/**
 * Joins the small chunks of one read of a request body into one write. Node's
 * parser hands over each chunk of a chunked body as its own Buffer, so a body
 * sent as 1-byte chunks would cost a tunnel frame per byte: a few hundred
 * bytes of heap each while queued, and a slot each of the tunnel client's
 * held frames (16 384 for a paused stream, then the stream is reset). The
 * chunks of one read are all handed over within one turn of the event loop
 * (with microtasks run between them: the parser calls back into JavaScript
 * for each); their join goes out after that turn's I/O (`setImmediate`), or
 * earlier at JOIN_MAX, before a larger chunk, or at the body's end, so the
 * order of the bytes is kept and nothing waits past the turn that read it.
 */
export class ChunkJoiner {
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  /** A `setImmediate` flush is pending (one at a time; a flush before it leaves it nothing to do). */
  private scheduled = false;
  private readonly flushLater = (): void => {
    this.scheduled = false;
    this.flush();
  };

  constructor(private readonly write: (chunk: Buffer) => void) {}

  push(chunk: Buffer): void {
    if (chunk.length >= JOIN_BELOW) {
      this.flush();
      this.write(chunk);
      return;
    }
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes >= JOIN_MAX) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushLater);
    }
  }

  /** Writes what is held now (before the body's end). */
  flush(): void {
    if (this.heldBytes === 0) return;
    const joined = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held, this.heldBytes);
    this.held.length = 0;
    this.heldBytes = 0;
    this.write(joined);
  }
}
