/** Query parameters whose values are credentials. */
const SECRET_PARAMS = new Set(['token', 'access_token']);

/**
 * Replaces the value of every credential query parameter (`token`,
 * `access_token`) in a URL or path with `[REDACTED]`, hides any fragment and
 * user info, and shortens a resume session id to its first 8 characters, as
 * the relay's own log lines do. Names are compared
 * decoded and case-insensitively, as a client may spell `token` as `%74oken`
 * and the query parser still finds it.
 */
export function redactUrl(url: string | undefined): string {
  if (!url) return '';
  return withoutUserinfoOrFragment(url).replace(/([?&])([^=&#]*)=([^&#]*)/g, (pair: string, sep: string, name: string, value: string) => {
    // The query parsers drop a `?` that starts the query, so `??token=` still carries a token.
    const decoded = decodeName(name.replace(/^\?+/, '')).toLowerCase();
    if (SECRET_PARAMS.has(decoded)) return `${sep}${name}=[REDACTED]`;
    // A resumable session's id lets its user reattach: logged as its first 8 characters only.
    if (decoded === 'resume' && value.length > RESUME_ID_SHOWN) return `${sep}${name}=${value.slice(0, RESUME_ID_SHOWN)}…`;
    return pair;
  });
}

const RESUME_ID_SHOWN = 8;

/**
 * A request target never carries a fragment or, in absolute form, user info;
 * a raw client that sends them may put a token there (`#token=…`, a token
 * value running past a `#`, `http://user:<token>@host/…`): both are hidden.
 */
function withoutUserinfoOrFragment(url: string): string {
  const hash = url.indexOf('#');
  const cut = hash < 0 ? url : `${url.slice(0, hash)}#[REDACTED]`;
  return cut.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#@]*@/, '$1[REDACTED]@');
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
