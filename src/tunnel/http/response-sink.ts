import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HttpResponseSink } from '../core/http-exchange.js';
import type { ResponseHead } from '../core/stream-types.js';
import { answerPlain } from '../../upgrade/raw-response.js';
import { statusHasNoContent } from '../../common/response-body.js';
import { isForwardableStatus, responseHeadersForRequester } from './header-hygiene.js';

/** How refusals made by another replica are told apart from a tunnel's response (cluster mode). */
export interface PlainRefusals {
  readonly header: string;
  readonly onRefusal?: (status: number) => void;
}

/**
 * The requester's response as an HTTP stream's sink: checks the status,
 * cleans the headers, sets Content-Length when the body length is known, and
 * streams the body with backpressure.
 */
export class NodeResponseSink implements HttpResponseSink {
  /** The body length the client declared (v2 streams it, so it is held to it); -1 when not declared. */
  private expected = -1;
  private written = 0;

  /**
   * `plain`: a head whose only header is `plain.header` is a refusal another
   * replica made itself: answered as a plain refusal with that reason (and
   * reported to `onRefusal`).
   */
  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly plain?: PlainRefusals,
  ) {}

  head(head: ResponseHead): boolean {
    const { res } = this;
    if (res.headersSent || res.destroyed) return false;
    const only = head.headers.length === 1 ? head.headers[0] : undefined;
    if (this.plain && only && only[0] === this.plain.header && isForwardableStatus(head.status)) {
      answerPlain(res, head.status, only[1], head.status === 413);
      this.plain.onRefusal?.(head.status);
      return false;
    }
    if (!isForwardableStatus(head.status)) {
      this.fail(502, 'bad response status from tunnel');
      return false;
    }
    res.statusCode = head.status;
    for (const [name, value] of responseHeadersForRequester(head.headers)) {
      try {
        res.appendHeader(name, value);
      } catch {
        // A value Node still refuses is dropped like any other invalid one.
      }
    }
    const noContent = statusHasNoContent(head.status);
    const bodyless = this.req.method === 'HEAD' || noContent;
    if (head.bodyLength !== undefined && !bodyless) {
      res.setHeader('content-length', head.bodyLength);
      this.expected = head.bodyLength;
    }
    // A HEAD answer carries the length a GET would have (RFC 9110 §9.3.2), which only the service knows.
    if (this.req.method === 'HEAD' && !noContent) {
      const length = declaredLength(head.headers);
      if (length !== null) res.setHeader('content-length', length);
    }
    // Node frames a 205 as it would a 200; RFC 9110 §15.3.6 has it say it has no content. What the client sends
    // after the head is dropped (`data`), and the connection goes on to its next request.
    if (head.status === 205) res.setHeader('content-length', 0);
    // Whole by its framing already (no body, or a declared length of 0): see `data`.
    if (bodyless || this.expected === 0) res.end();
    // A streamed body of unknown length (v2: chunked, SSE, long polls): the requester gets the head now, not with the first bytes.
    else if (head.bodyLength === undefined) res.flushHeaders();
    return true;
  }

  data(chunk: Uint8Array, flushed?: () => void): boolean {
    const { res } = this;
    if (res.destroyed || res.writableEnded) {
      flushed?.();
      return true;
    }
    // The write's callback once the bytes left; the response's close if the connection dies first.
    const done = flushed && once(flushed);
    if (done) res.once('close', done);
    // The declared Content-Length reached: the response is whole for the requester, whose keep-alive connection goes
    // on to its next request now rather than behind the client's END, which may come late or never. More than
    // that length: the declared length is sent, the rest dropped.
    if (this.expected >= 0 && this.written + chunk.length >= this.expected) {
      res.end(chunk.subarray(0, this.expected - this.written), done);
      this.written = this.expected;
      return true;
    }
    this.written += chunk.length;
    return res.write(chunk, done);
  }

  get complete(): boolean {
    return this.res.writableEnded;
  }

  whenDrained(cb: () => void): void {
    this.res.once('drain', cb);
  }

  end(): void {
    const { res } = this;
    if (res.destroyed || res.writableEnded) return;
    if (this.expected >= 0 && this.written < this.expected) {
      // Nothing of it sent yet: the requester can still get a clean 502 instead of an empty reply.
      if (!res.headersSent) return this.fail(502, 'tunnel response shorter than its declared length');
      // Less than the declared Content-Length: what was written goes out, then the connection ends, so the requester sees a truncated response.
      res.socket?.end();
    } else {
      res.end();
    }
  }

  fail(status: number, reason: string): void {
    const { res } = this;
    if (res.destroyed || res.writableEnded) return;
    // A head the client sent but that has not gone out yet (a declared length holds it back) is not part of the refusal.
    if (!res.headersSent) for (const name of res.getHeaderNames()) res.removeHeader(name);
    // The rest of a refused or stalled body must not be read as the next request.
    answerPlain(res, status, reason, status === 413 || status === 408);
  }
}

/** The service's Content-Length: one value (or repeats of it) of digits only; null otherwise. */
export function declaredLength(headers: readonly (readonly [string, string])[]): string | null {
  let found: string | null = null;
  for (const [name, value] of headers) {
    if (name.length !== 14 || name.toLowerCase() !== 'content-length') continue;
    const v = value.trim();
    if (!/^\d{1,15}$/.test(v) || (found !== null && found !== v)) return null;
    found = v;
  }
  return found;
}

/** `fn`, callable many times, running once. */
function once(fn: () => void): () => void {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    fn();
  };
}
