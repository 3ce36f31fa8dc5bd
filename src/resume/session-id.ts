import { randomBytes } from 'node:crypto';

/** A new session id: 128 bits from the CSPRNG, as 32 lowercase hex digits. */
export function newSessionId(): string {
  return randomBytes(16).toString('hex');
}

/**
 * The part of a session id that logs and events may carry: its first 8 hex
 * digits (32 of 128 bits), enough to correlate log lines, useless to reattach.
 */
export function logSafeId(id: string): string {
  return id.slice(0, 8);
}
