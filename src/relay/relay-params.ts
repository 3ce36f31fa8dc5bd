import { Refusal } from '../common/refusal.js';
import { parsePort } from '../policy/host.js';
import type { QueryParams } from '../upgrade/query-params.js';

/** The target named by a `/relay` query. */
export interface RelayTarget {
  readonly host: string;
  readonly port: number;
}

/** Reads `host` and `port` from a `/relay` query, or throws `Refusal(400)`. Host syntax is checked by the target policy. */
export function parseRelayTarget(query: QueryParams): RelayTarget {
  const host = query.get('host');
  const portRaw = query.get('port');
  if (!host) throw new Refusal(400, 'missing host', 'bad_request');
  if (!portRaw) throw new Refusal(400, 'missing port', 'bad_request');
  const port = parsePort(portRaw);
  if (port === null) throw new Refusal(400, 'invalid port', 'bad_request');
  return { host, port };
}
