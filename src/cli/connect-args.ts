/**
 * Command-line parsing for `wsproxy-connect`. Pure: takes argv and the
 * environment, returns options or throws `UsageError`.
 */
import { RELAY_CLIENT_MAX_MESSAGE_BYTES } from '../common/client-message-limit.js';
import { unknownOptionText } from './unknown-option.js';
import { CLIENT_LIVENESS, durationText, type LivenessOptions } from './liveness.js';

/** Where the token travels on the handshake. */
export type TokenCarrier = 'query' | 'header';

/**
 * How the command uses the relay: `plain`, one WebSocket for the whole
 * session; `resume` (`--resume`), a resumable relay that reattaches after a
 * dropped connection (docs/resume-protocol.md).
 */
export type ConnectMode = 'plain' | 'resume';

/** What `wsproxy-connect` was asked to do. */
export interface ConnectOptions {
  readonly mode: ConnectMode;
  /** The `/relay` URL as given (`ws:` or `wss:`), without the token. */
  readonly url: URL;
  /** From `--token`, else `WSPROXY_TOKEN`; never printed. */
  readonly token: string | null;
  readonly tokenCarrier: TokenCarrier;
  /** `Origin` header to send, if any. */
  readonly origin: string | null;
  /** Largest message taken from the proxy (`--max-message-bytes`); a larger one ends the relay with 1009. */
  readonly maxMessageBytes: number;
  /** How often to ping the relay, and after how long without hearing anything the connection is lost. */
  readonly liveness: LivenessOptions;
}

/** The range `--max-message-bytes` takes: the proxy's `MAX_MESSAGE_BYTES` range. */
export const MAX_MESSAGE_BYTES_RANGE = { min: 1024, max: 256 * 1024 * 1024 } as const;

/** The result of parsing: run with options, or print help. */
export type ParsedArgs = { readonly kind: 'run'; readonly options: ConnectOptions } | { readonly kind: 'help' };

/** A command line that cannot be run; the message is for stderr, followed by the usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Environment variable read for the token when `--token` is absent. */
export const TOKEN_ENV = 'WSPROXY_TOKEN';

/** Environment variables that set the liveness check (milliseconds): for tests, and for paths that need another pace. */
export const LIVENESS_ENV = { pingEveryMs: 'WSPROXY_PING_EVERY_MS', deadAfterMs: 'WSPROXY_DEAD_AFTER_MS' } as const;

/** The range the liveness variables take, in milliseconds. */
export const LIVENESS_MS_RANGE = { min: 10, max: 3_600_000 } as const;

export const USAGE = `usage: wsproxy-connect [--resume] [--token T] [--token-carrier query|header] [--origin O] [--max-message-bytes N] URL

Bridges stdin/stdout to a wsproxy /relay WebSocket, for OpenSSH:
  ssh -o ProxyCommand='wsproxy-connect "wss://proxy.example.com/relay?host=%h&port=%p"' user@host

options:
  --resume               resumable relay: survive dropped connections (network changes)
                         by reattaching within the relay's window
  --token T              JWT for the relay (default: $${TOKEN_ENV}; prefer the variable,
                         a command line is visible to other local users)
  --token-carrier C      query (default: appended as ?token=) or header (Authorization: Bearer)
  --origin O             Origin header to send (for relays with ALLOWED_ORIGINS set)
  --max-message-bytes N  largest WebSocket message taken from the proxy (default ${RELAY_CLIENT_MAX_MESSAGE_BYTES},
                         the proxy's default MAX_MESSAGE_BYTES); a larger one ends the relay with 1009
  -h, --help             this text

The relay is pinged every ${durationText(CLIENT_LIVENESS.pingEveryMs)}; a connection that hears nothing for ${durationText(CLIENT_LIVENESS.deadAfterMs)} is lost (without --resume:
exit 255). ${LIVENESS_ENV.pingEveryMs} and ${LIVENESS_ENV.deadAfterMs} (milliseconds) change that.

exit status: 0 when the relay closes normally (1000), 255 on any connection error, 2 for a bad command line.`;

const CARRIERS: readonly TokenCarrier[] = ['query', 'header'];

/** Options that take a value (`--name value` or `--name=value`). */
const VALUED = new Set(['--token', '--token-carrier', '--origin', '--max-message-bytes']);

/** Options that are flags. */
const FLAGS = new Set(['--resume']);

/** Parses `argv` (without node and script) and `env` into options. */
export function parseConnectArgs(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedArgs {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') return { kind: 'help' };
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('-') && arg !== '-') {
      const eq = arg.indexOf('=');
      const name = eq === -1 ? arg : arg.slice(0, eq);
      if (FLAGS.has(name) && eq === -1) {
        flags.add(name);
        continue;
      }
      if (!VALUED.has(name)) throw new UsageError(`unknown option ${unknownOptionText(name, [...VALUED, ...FLAGS, '--help'])}`);
      let value: string;
      if (eq !== -1) value = arg.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i];
      else throw new UsageError(`${name} needs a value`);
      values.set(name, value);
      continue;
    }
    positional.push(arg);
  }

  if (positional.length === 0) throw new UsageError('missing URL');
  if (positional.length > 1) throw new UsageError('expected exactly one URL');

  const carrier = values.get('--token-carrier') ?? 'query';
  if (!CARRIERS.includes(carrier as TokenCarrier)) {
    throw new UsageError(`--token-carrier must be one of ${CARRIERS.join(', ')}`);
  }
  const url = parseRelayUrl(positional[0]);
  // A token written in the URL is taken out of it and carried like any other
  // (--resume rebuilds the URL for every attach and would otherwise lose it).
  const inUrl = url.searchParams.get('token') ?? '';
  url.searchParams.delete('token');
  const token = values.get('--token') ?? env[TOKEN_ENV] ?? inUrl;
  const origin = values.get('--origin') ?? '';
  const maxRaw = values.get('--max-message-bytes');
  const maxMessageBytes = maxRaw === undefined ? RELAY_CLIENT_MAX_MESSAGE_BYTES : Number(maxRaw);
  const { min, max } = MAX_MESSAGE_BYTES_RANGE;
  if (maxRaw !== undefined && (!/^\d+$/.test(maxRaw) || maxMessageBytes < min || maxMessageBytes > max)) {
    throw new UsageError(`--max-message-bytes must be an integer from ${min} to ${max}`);
  }

  const liveness = parseLiveness(env);

  return {
    kind: 'run',
    options: {
      mode: flags.has('--resume') ? 'resume' : 'plain',
      url,
      token: token === '' ? null : token,
      tokenCarrier: carrier as TokenCarrier,
      origin: origin === '' ? null : origin,
      maxMessageBytes,
      liveness,
    },
  };
}

function parseLiveness(env: NodeJS.ProcessEnv): LivenessOptions {
  const { min, max } = LIVENESS_MS_RANGE;
  const read = (key: keyof LivenessOptions): number => {
    const raw = env[LIVENESS_ENV[key]];
    if (raw === undefined || raw === '') return CLIENT_LIVENESS[key];
    const ms = Number(raw);
    if (!/^\d+$/.test(raw) || ms < min || ms > max) throw new UsageError(`${LIVENESS_ENV[key]} must be an integer from ${min} to ${max}`);
    return ms;
  };
  return { pingEveryMs: read('pingEveryMs'), deadAfterMs: read('deadAfterMs') };
}

function parseRelayUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // The raw text may hold a token in its query: never echo it.
    throw new UsageError('URL is not a valid URL (expected ws://host[:port]/relay?host=H&port=P)');
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new UsageError(`URL must start with ws:// or wss:// (got ${url.protocol}//)`);
  }
  return url;
}

/** What to pass to the WebSocket client: the final URL and extra headers. */
export interface HandshakeRequest {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly origin: string | undefined;
  /** Largest message taken from the proxy (default `RELAY_CLIENT_MAX_MESSAGE_BYTES`). */
  readonly maxMessageBytes?: number;
}

/** Places the token where `tokenCarrier` says; an existing `token` parameter is replaced. */
export function handshakeRequest(options: ConnectOptions): HandshakeRequest {
  const url = new URL(options.url);
  const headers: Record<string, string> = {};
  if (options.token !== null) {
    if (options.tokenCarrier === 'query') url.searchParams.set('token', options.token);
    else headers.Authorization = `Bearer ${options.token}`;
  }
  return { url: url.toString(), headers, origin: options.origin ?? undefined, maxMessageBytes: options.maxMessageBytes };
}

