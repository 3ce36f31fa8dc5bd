import type { InboundStreamEvent } from './stream-types.js';

/** A refusal a requester gets in place of the response it waited for: an HTTP status and its reason. */
export interface StreamFailure {
  readonly status: number;
  readonly reason: string;
}

/** The client's reset of a stream, or a response the codec could not use. */
export type StreamBreak = Extract<InboundStreamEvent, { type: 'reset' } | { type: 'malformed' }>;

/**
 * What a requester still waiting for its response head is answered when its stream breaks: the status a
 * reset names (a codec's own refusal, such as 503 when the client is not reading), else 502.
 */
export function failureBeforeHead(ev: StreamBreak): StreamFailure {
  if (ev.type === 'malformed') return { status: 502, reason: 'bad response from tunnel' };
  return ev.status === undefined ? { status: 502, reason: 'tunnel reset the request' } : { status: ev.status, reason: ev.reason };
}
