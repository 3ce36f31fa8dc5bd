/** Runs of token characters (base64url and dots) at least 12 long: shorter ones are common words. */
const TOKEN_RUN = /[A-Za-z0-9_.-]{12,}/g;

/**
 * Replaces secrets in `text` (a refusal body or close reason a proxy sent,
 * an error message) with `[REDACTED]`, for the CLIs' error output: every
 * occurrence of each secret; every run of token characters (base64url and
 * dots) of at least 12 that is part of a secret, so a proxy echoing one
 * segment of a JWT, or a close reason cut short in the middle of one, does
 * not print it either; any `token=` / `access_token=` query value; and the
 * user info of any URL.
 */
export function scrub(text: string, secrets: readonly (string | null | undefined)[]): string {
  const known = secrets.filter((s): s is string => typeof s === 'string' && s !== '');
  let out = text;
  for (const s of known) out = out.split(s).join('[REDACTED]');
  if (known.length > 0) {
    out = out.replace(TOKEN_RUN, (run) => (known.some((s) => s.includes(run)) ? '[REDACTED]' : run));
  }
  // A value already redacted ends there: what follows it (the `: ` before an error) is not part of it.
  return (
    out
      .replace(/([?&](?:token|access_token)=)(?:\[REDACTED\]|[^&#\s]*)/gi, '$1[REDACTED]')
      // The user info of a URL (`wss://user:password@host/…`) is a credential too (ws sends it as Basic auth).
      .replace(/\b([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s/?#@]*@/g, '$1[REDACTED]@')
  );
}
