import { randomBytes } from 'node:crypto';

/** A tunnel subdomain label: exactly 16 lowercase hex characters. */
export const SUBDOMAIN_RE = /^[0-9a-f]{16}$/;

/** A fresh subdomain label from the CSPRNG (64 bits). */
export function newSubdomain(): string {
  return randomBytes(8).toString('hex');
}
