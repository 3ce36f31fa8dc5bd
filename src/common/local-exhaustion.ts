import { Logger } from '@nestjs/common';
import { LogThrottle } from './log-throttle.js';
import { Refusal } from './refusal.js';

/**
 * Error codes that mean the proxy itself ran out of something: file
 * descriptors (`EMFILE` for the process, `ENFILE` for the system), socket
 * buffers or memory, or local ports to connect from (`EADDRNOTAVAIL`). The
 * target did nothing wrong, so they are not a 502.
 */
const LOCAL_EXHAUSTION = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL']);

const logger = new Logger('Resources');
const throttle = new LogThrottle(10_000, 16);

/**
 * The refusal for `code` when it is a local exhaustion (see above): 503
 * `proxy out of resources`, logged at most once per 10 s per code; null
 * for any other code.
 */
export function exhaustionRefusal(code: string | undefined, doing: string): Refusal | null {
  if (code === undefined || !LOCAL_EXHAUSTION.has(code)) return null;
  const suppressed = throttle.take(code);
  if (suppressed !== null) {
    const more = suppressed > 0 ? ` (${suppressed} more since the last warning)` : '';
    logger.warn(`${doing} failed with ${code}: the proxy is out of resources${code === 'EMFILE' ? ' (raise the open-file limit)' : ''}${more}`);
  }
  return new Refusal(503, 'proxy out of resources', 'resources');
}
