import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { ListenerRefusal } from './listener-refusals.js';
import { parseQuery, type QueryParams } from './query-params.js';

const PLAIN_PATH = /^\/[A-Za-z0-9/_-]*$/;

/** The origin a request target is read against: only its path and query are used. */
const TARGET_BASE = 'http://upgrade.invalid';

/**
 * Path and query of an upgrade's request target. A plain origin-form path
 * (the usual `/relay?…`) is split as it is; anything else (dot segments,
 * percent-encoding, absolute-form, a fragment) goes through the WHATWG URL
 * parser. Null when it cannot be parsed.
 */
export function parseRequestTarget(target: string | undefined): { path: string; query: QueryParams } | null {
  const raw = target ?? '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  if (PLAIN_PATH.test(path) && !raw.includes('#')) return { path, query: parseQuery(q < 0 ? '' : raw.slice(q + 1)) };
  try {
    // Given alone, the URL parser reads a path that starts with `//` as a URL without scheme: `//evil.example/relay`
    // would be host `evil.example` and path `/relay`. An origin-form target is a path (RFC 9112 §3.2.1), as Express reads it.
    const url = raw.startsWith('/') ? new URL(`${TARGET_BASE}${raw}`) : new URL(raw, TARGET_BASE);
    return { path: url.pathname, query: url.searchParams };
  } catch {
    return null;
  }
}

/**
 * Reads a request's target as RFC 9112 §3.2.2 asks of a server: an
 * absolute-form target's authority replaces the Host header, so routing by
 * Host (tunnel subdomains) sees the host the target names, as an intermediary
 * routing by the target does. False when the target cannot be read at all
 * (neither origin-form, `*`, nor a URL the WHATWG parser accepts), names
 * userinfo, or has an empty host: the request gets 400.
 */
export function adoptTargetAuthority(req: IncomingMessage): boolean {
  const target = req.url;
  if (target === undefined || target.charCodeAt(0) === 0x2f /* / */ || target === '*') return true;
  // RFC 9110 §4.2.1: an http URI with an empty host MUST be rejected as invalid. `http:///x/` has an empty authority
  // (RFC 3986), which the URL parser does not see: it skips the slashes and takes `x` as the host, routed by (and
  // `http:///a@b/` as user `a` at host `b`). RFC 9110 §4.2.4: userinfo in an http(s) target is an error (it
  // obscures the authority, as phishing links do); the URL parser would drop it silently and route by what follows
  // the `@`, and an empty one (`http://@b/`) leaves no trace in the parsed URL. A Host with one is refused as well.
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\/(?:\/|[^/?#]*@)/.test(target)) return false;
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return false;
  }
  // Whatever spelling the parser still found userinfo in: routing reads its host, so the same refusal.
  if (url.username !== '' || url.password !== '') return false;
  if (url.host !== '') {
    req.headers.host = url.host;
    // rawHeaders are what a tunnel's service gets: it sees the same host.
    const raw = req.rawHeaders;
    let replaced = false;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') {
        raw[i + 1] = url.host;
        replaced = true;
      }
    }
    if (!replaced) raw.push('Host', url.host);
  }
  return true;
}

/**
 * How many Host lines a request carries (`rawHeaders` are name/value pairs),
 * counting up to two. RFC 9112 §3.2 answers 400 to more than one (routing
 * reads the first, a tunnel's service might read another) and to none in
 * HTTP/1.1.
 */
export function hostLines(rawHeaders: readonly string[]): 0 | 1 | 2 {
  let seen: 0 | 1 = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (seen) return 2;
      seen = 1;
    }
  }
  return seen;
}

/**
 * More header fields than any real client sends (browsers send a few dozen).
 * It also keeps every head inside what Node hands over: `rawHeaders` stops at
 * about a thousand fields, and a second Host line past that would go unseen.
 * A tunnel's head must fit the v2 wire with the forwarding headers the proxy
 * appends (`V2_MAX_HEADER_FIELDS`), which this bound leaves room for.
 */
export const MAX_REQUEST_HEADER_FIELDS = 200;

/**
 * RFC 9112 §3.2 / RFC 3986 §3.2.2: `uri-host [ ":" port ]`, the host an IP
 * literal in brackets (with an RFC 6874 zone id, `%25eth0`) or a reg-name
 * (empty allowed: a target without authority). Anything else in Host is an invalid field value.
 */
const HOST_VALUE = /^(?:\[[0-9A-Za-z:._~!$&'()*+,;=%-]+\]|[0-9A-Za-z._~!$&'()*+,;=%-]*)(?::(\d{0,5}))?$/;

/** Whether a Host field value is what RFC 9112 §3.2 allows (a port, if any, at most 65535). */
export function isValidHostValue(value: string): boolean {
  const m = HOST_VALUE.exec(value);
  if (m === null || (m[1] !== undefined && m[1] !== '' && Number(m[1]) > 65535)) return false;
  return !value.startsWith('[') || isIpLiteral(value.slice(1, value.indexOf(']')));
}

/** RFC 3986 IPvFuture: `v` 1*HEXDIG `.` 1*( unreserved / sub-delims / `:` ). */
const IP_FUTURE = /^v[0-9a-f]+\.[0-9a-z._~!$&'()*+,;=:-]+$/i;
/** RFC 6874 ZoneID after its `%25`: 1*( unreserved / pct-encoded ). */
const ZONE_ID = /^(?:[0-9a-z._~-]|%[0-9a-f]{2})+$/i;

/**
 * RFC 3986 §3.2.2 (with RFC 6874): what may stand between the brackets of an
 * IP-literal: an IPv6 address, optionally with a `%25`-encoded zone id, or
 * IPvFuture. A name or an IPv4 address in brackets (`[example.com]`,
 * `[1.2.3.4]`) is no host at all.
 */
function isIpLiteral(inner: string): boolean {
  if (IP_FUTURE.test(inner)) return true;
  const zone = inner.indexOf('%25');
  const address = zone < 0 ? inner : inner.slice(0, zone);
  if (zone >= 0 && !ZONE_ID.test(inner.slice(zone + 3))) return false;
  // node:net reads a raw `%zone` as part of an IPv6 address; in a URI authority it must be `%25`.
  return !address.includes('%') && isIP(address) === 6;
}

/**
 * What any request or upgrade is refused for by its head alone, before
 * routing, or null. Adopts an absolute-form target's authority as it checks
 * (`adoptTargetAuthority`). The HTTP listener and the upgrade router both ask.
 */
export function frontRequestProblem(req: IncomingMessage): ListenerRefusal | null {
  // HTTP/1.0 and 1.1 only: a request line labelled HTTP/2.0 or 0.9 gets 505 (RFC 9110 §15.6.6).
  if (req.httpVersionMajor !== 1) return 'unsupported_version';
  if (req.rawHeaders.length > 2 * MAX_REQUEST_HEADER_FIELDS) return 'too_many_headers';
  const hosts = hostLines(req.rawHeaders);
  // RFC 9112 §3.2: a front proxy routing by another Host line than ours would see another request.
  if (hosts === 2) return 'repeated_host';
  // Node refuses this itself for plain requests (without a reason) but not for upgrades; the listener lets it through to here.
  if (hosts === 0 && req.httpVersionMinor >= 1) return 'missing_host';
  if (!adoptTargetAuthority(req)) return 'malformed_target';
  // After adopting: an absolute-form target's authority is the Host now.
  const host = req.headers.host;
  if (host !== undefined && !isValidHostValue(host)) return 'invalid_host';
  return null;
}
