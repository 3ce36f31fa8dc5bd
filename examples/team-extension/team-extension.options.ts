/** What a deployment passes to `TeamExtensionModule.forRoot`. */
export interface TeamExtensionOptions {
  /** Users (`sub`) refused at admission, e.g. suspended accounts. */
  readonly deniedUsers: readonly string[];
  /** Where audit records go; default one JSON line each on stdout. */
  readonly write?: (record: AuditRecord) => void;
}

/** One audit record: who did what, never a token. */
export interface AuditRecord {
  readonly at: string;
  readonly event: AuditEvent;
  readonly [field: string]: unknown;
}

export type AuditEvent = 'relay.opened' | 'relay.closed' | 'admission.refused';

export const TEAM_EXTENSION_OPTIONS = Symbol('TEAM_EXTENSION_OPTIONS');
