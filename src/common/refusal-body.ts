import type { IncomingMessage } from 'node:http';

/** Longest refusal body kept for a message. */
export const MAX_REASON_BYTES = 1024;

/**
 * Reads the body of a refused handshake (the proxy's reason) for a message:
 * the first `MAX_REASON_BYTES` only, since a hostile or broken proxy may send
 * any amount. Calls `done` once, with the text trimmed, at the end, on an
 * error, or when the response closes.
 */
export function readRefusalBody(res: IncomingMessage, done: (reason: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    done(Buffer.concat(chunks).toString('utf8').trim());
  };
  res.on('data', (c: Buffer) => {
    if (size < MAX_REASON_BYTES) chunks.push(c.subarray(0, MAX_REASON_BYTES - size));
    size += c.length;
    if (size >= MAX_REASON_BYTES) {
      finish();
      res.destroy();
    }
  });
  res.once('end', finish);
  res.once('error', finish);
  res.once('close', finish);
}

/** `text` with control characters (C0, DEL, C1) shown as `?`: a proxy's words must not drive the user's terminal. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}
