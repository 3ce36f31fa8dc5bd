import { fitCloseReason } from './close-reason.js';

/** Why an admission was refused; the label of the `wsproxy_admission_refusals_total` metric. */
export type RefusalReason =
  | 'bad_request'
  | 'origin'
  | 'auth'
  | 'auth_unavailable'
  | 'limit'
  | 'blocked'
  | 'dial'
  | 'draining'
  | 'not_found'
  | 'cluster'
  /** The replica holds `MAX_CONNECTIONS` connections already: 503. */
  | 'capacity'
  /** The proxy ran out of file descriptors, buffers or local ports: 503. */
  | 'resources'
  /** Admission itself failed (a bug, a rule that threw): 500. */
  | 'internal';

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

/** Reason phrase of an HTTP status, for hand-written responses on upgrade sockets. */
export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? 'Error';
}

/**
 * A refused admission: an HTTP status and a short plain-text reason that is safe
 * to show the client (never a token or its claims). With `errors=close` it is
 * delivered as WebSocket close code `4000 + status`.
 */
export class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    readonly kind: RefusalReason,
  ) {
    super(reason);
    this.name = 'Refusal';
  }

  /** The WebSocket close code that carries this refusal (`errors=close`). */
  get closeCode(): number {
    return 4000 + this.status;
  }

  /** The reason as a close frame carries it (`errors=close`): cut to 123 bytes. */
  get closeReason(): string {
    return fitCloseReason(this.reason);
  }
}

export function isRefusal(err: unknown): err is Refusal {
  return err instanceof Refusal;
}

/** `Retry-After` (seconds) of every 503 refusal: draining, at capacity, authentication or cluster state unavailable. */
export const RETRY_AFTER_S = '5';
