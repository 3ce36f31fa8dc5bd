import type { Writable } from 'node:stream';

/**
 * For output that only informs (messages on stderr, the tunnel's ready
 * lines): a write error there (the reader went away: EPIPE) must not end the
 * process as an unhandled 'error' event, taking a live session with it.
 * `onFirst` hears the first such error.
 */
export function tolerateWriteErrors(stream: Writable, onFirst: (err: Error) => void = () => undefined): void {
  let heard = false;
  stream.on('error', (err: Error) => {
    if (heard) return;
    heard = true;
    onFirst(err);
  });
}
