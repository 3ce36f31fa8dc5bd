/** What routes read from an upgrade's query; `URLSearchParams` is one. */
export interface QueryParams {
  get(name: string): string | null;
  has(name: string): boolean;
}

/** Characters `URLSearchParams` would decode or re-encode: percent escapes, `+`, anything beyond ASCII. */
const NEEDS_DECODING = /[%+\u0080-\uffff]/;

/**
 * Parses a request target's query (without its `?`) as `URLSearchParams`
 * does. A query with nothing to decode (the usual relay query: a host, a port
 * and a base64url token) is split into plain slices: `URLSearchParams` walks
 * every character of a several-hundred-character token to decode it, a
 * measurable part of each setup. Anything else goes to `URLSearchParams`.
 */
export function parseQuery(raw: string): QueryParams {
  if (NEEDS_DECODING.test(raw)) return new URLSearchParams(raw);
  return new PlainQuery(raw.startsWith('?') ? raw.slice(1) : raw);
}

class PlainQuery implements QueryParams {
  private readonly names: string[] = [];
  private readonly values: string[] = [];

  constructor(raw: string) {
    let start = 0;
    while (start < raw.length) {
      let end = raw.indexOf('&', start);
      if (end === -1) end = raw.length;
      if (end > start) {
        const eq = raw.indexOf('=', start);
        const split = eq !== -1 && eq < end;
        this.names.push(raw.slice(start, split ? eq : end));
        this.values.push(split ? raw.slice(eq + 1, end) : '');
      }
      start = end + 1;
    }
  }

  get(name: string): string | null {
    const i = this.names.indexOf(name);
    return i === -1 ? null : this.values[i]!;
  }

  has(name: string): boolean {
    return this.names.includes(name);
  }
}
