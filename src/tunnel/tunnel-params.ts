import { Refusal } from '../common/refusal.js';

/** What a `/tunnel` query asks for besides authentication. */
export interface TunnelParams {
  /** How the proxy sends control messages: text frames (default) or binary frames carrying the same JSON. */
  readonly control: 'text' | 'binary';
  /**
   * Protocol version asked for with `v`. Only 1 exists today; a client asking
   * for a later one gets v1 and sees it in `tunnel_ready` (no `version` field).
   */
  readonly requestedVersion: number;
}

/** Reads `control` and `v` from a `/tunnel` query, or throws `Refusal(400)`. */
export function parseTunnelParams(query: URLSearchParams): TunnelParams {
  const control = query.get('control') ?? 'text';
  if (control !== 'text' && control !== 'binary') throw new Refusal(400, 'control must be text or binary', 'bad_request');
  const v = query.get('v') ?? '1';
  if (!/^[1-9]\d{0,2}$/.test(v)) throw new Refusal(400, 'invalid protocol version', 'bad_request');
  return { control, requestedVersion: Number(v) };
}
