import { Refusal } from '../common/refusal.js';
import type { QueryParams } from '../upgrade/query-params.js';
import { SESSION_ID_PATTERN, type ControlMode } from './wire.js';

/** What the `resume` query parameter asks for. */
export type ResumeRequest =
  /** No `resume`: a plain relay. */
  | { readonly kind: 'plain' }
  /** `resume=1` (with host and port): open a resumable session. */
  | { readonly kind: 'open'; readonly control: ControlMode }
  /** `resume=<id>&received=N` (no host/port): reattach to a session. */
  | { readonly kind: 'reattach'; readonly id: string; readonly received: number };

/** `control=text|binary` (default text), or `Refusal(400)`. */
export function parseControlMode(query: QueryParams): ControlMode {
  const raw = query.get('control');
  if (raw === null || raw === '' || raw === 'text') return 'text';
  if (raw === 'binary') return 'binary';
  throw new Refusal(400, 'invalid control (expected text or binary)', 'bad_request');
}

/**
 * Reads `resume`, `received` and `control` from a `/relay` query, or throws
 * `Refusal(400)`. A reattach names no target: host and port are refused with it.
 */
export function parseResumeRequest(query: QueryParams): ResumeRequest {
  const resume = query.get('resume');
  if (resume === null) return { kind: 'plain' };
  if (resume === '1') return { kind: 'open', control: parseControlMode(query) };
  if (!SESSION_ID_PATTERN.test(resume)) throw new Refusal(400, 'invalid resume (expected 1 or a session id)', 'bad_request');
  if (query.has('host') || query.has('port')) throw new Refusal(400, 'a reattach takes no host or port', 'bad_request');
  const raw = query.get('received');
  if (raw === null) throw new Refusal(400, 'missing received', 'bad_request');
  if (!/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new Refusal(400, 'invalid received', 'bad_request');
  return { kind: 'reattach', id: resume, received: Number(raw) };
}
