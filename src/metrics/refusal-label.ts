import type { RefusalReason } from '../common/refusal.js';

/** Values of the `reason` label of `wsproxy_admission_refusals_total`. */
export const REFUSAL_LABELS = [
  'auth',
  'origin',
  'limit',
  'blocked',
  'dial',
  'bad_request',
  'draining',
  'not_found',
  'cluster',
  'capacity',
  'resources',
  'internal',
] as const;

export type RefusalLabel = (typeof REFUSAL_LABELS)[number] | 'other';

const BY_KIND: Record<RefusalReason, RefusalLabel> = {
  auth: 'auth',
  // The issuer's keys could not be had: still an authentication refusal to an operator.
  auth_unavailable: 'auth',
  origin: 'origin',
  limit: 'limit',
  blocked: 'blocked',
  dial: 'dial',
  bad_request: 'bad_request',
  draining: 'draining',
  not_found: 'not_found',
  cluster: 'cluster',
  capacity: 'capacity',
  resources: 'resources',
  internal: 'internal',
};

/** The metric label of a `Refusal.kind`; unknown kinds fold into `other` so the label set stays bounded. */
export function refusalLabel(kind: string): RefusalLabel {
  return Object.hasOwn(BY_KIND, kind) ? BY_KIND[kind as RefusalReason] : 'other';
}

/** `2xx`, `4xx`, …; anything outside 100..599 is `other`. */
export function statusClass(status: number): string {
  return Number.isInteger(status) && status >= 100 && status <= 599 ? `${Math.floor(status / 100)}xx` : 'other';
}
