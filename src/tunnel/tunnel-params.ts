import { Refusal } from '../common/refusal.js';
import type { QueryParams } from '../upgrade/query-params.js';

/** The newest tunnel protocol version this proxy speaks. */
export const LATEST_TUNNEL_PROTOCOL = 2;

/** What a `/tunnel` query asks for besides authentication. */
export interface TunnelParams {
  /**
   * How the proxy sends v1 control messages: text frames (default) or binary
   * frames carrying the same JSON. v2 is binary only and ignores it.
   */
  readonly control: 'text' | 'binary';
  /** Protocol version asked for with `v` (default 1). */
  readonly requestedVersion: number;
  /**
   * The version spoken: the one asked for, or the newest this proxy speaks
   * when the client asked for a later one. Without `v` (existing clients) it
   * is 1, byte for byte.
   */
  readonly version: 1 | 2;
}

/** Reads `control` and `v` from a `/tunnel` query, or throws `Refusal(400)`. */
export function parseTunnelParams(query: QueryParams): TunnelParams {
  const control = query.get('control') ?? 'text';
  if (control !== 'text' && control !== 'binary') throw new Refusal(400, 'control must be text or binary', 'bad_request');
  const v = query.get('v') ?? '1';
  if (!/^[1-9]\d{0,2}$/.test(v)) throw new Refusal(400, 'invalid protocol version', 'bad_request');
  const requestedVersion = Number(v);
  return { control, requestedVersion, version: requestedVersion >= 2 ? 2 : 1 };
}
