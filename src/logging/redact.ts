/** Replaces the value of every `token` query parameter in a URL or path with `[REDACTED]`. */
export function redactUrl(url: string | undefined): string {
  if (!url) return '';
  return url.replace(/([?&](?:token|access_token)=)[^&#]*/gi, '$1[REDACTED]');
}
