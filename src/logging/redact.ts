/** Query parameters whose values are credentials. */
const SECRET_PARAMS = new Set(['token', 'access_token']);

/**
 * Replaces the value of every credential query parameter (`token`,
 * `access_token`) in a URL or path with `[REDACTED]`. Names are compared
 * decoded and case-insensitively, as a client may spell `token` as `%74oken`
 * and the query parser still finds it.
 */
export function redactUrl(url: string | undefined): string {
  if (!url) return '';
  return url.replace(/([?&])([^=&#]*)=([^&#]*)/g, (pair: string, sep: string, name: string) =>
    SECRET_PARAMS.has(decodeName(name).toLowerCase()) ? `${sep}${name}=[REDACTED]` : pair,
  );
}

function decodeName(name: string): string {
  const spaced = name.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    // Malformed escapes: decode what can be decoded, as URLSearchParams does.
    return spaced.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  }
}
