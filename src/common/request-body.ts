import type { IncomingMessage } from 'node:http';

/** Whether a request says it has no body: no `Transfer-Encoding` and no (or a zero) `Content-Length`. */
export function declaresNoBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] === undefined && (req.headers['content-length'] ?? '0') === '0';
}
