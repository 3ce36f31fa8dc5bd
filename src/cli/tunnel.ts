#!/usr/bin/env node
/**
 * `wsproxy-tunnel`: exposes a local HTTP service (and optionally a local TCP
 * service) through a wsproxy tunnel, the way `lt --port 3000` does.
 *
 *   wsproxy-tunnel --proxy wss://proxy.example.com/tunnel --to 127.0.0.1:3000 [--tcp-to 127.0.0.1:22]
 *                  [--token T | WSPROXY_TOKEN=T] [--protocol 1|2] [--control binary]
 */
import { parseArgs } from 'node:util';
import { hostPort } from '../common/host-port.js';
import { printable } from '../common/refusal-body.js';
import { scrub } from './scrub.js';
import { onStopSignals } from './stop-signals.js';
import { tolerateWriteErrors } from './tolerate-write-errors.js';
import { unknownOptionText } from './unknown-option.js';
import { TunnelClient, TunnelRefusedError, parseTarget } from '../tunnel/client/tunnel-client.js';

const USAGE = `usage: wsproxy-tunnel --proxy ws(s)://host/tunnel --to host:port [--tcp-to host:port] [--token T] [--protocol 1|2] [--control binary] [--max-body-bytes N]

  --proxy    the proxy's /tunnel endpoint (ws:// or wss://)
  --to       local HTTP service for the public URL (host:port, or a port on 127.0.0.1)
  --tcp-to   local TCP service for the raw port
  --token    bearer token (or the WSPROXY_TOKEN environment variable, which stays out of ps)
  --protocol tunnel protocol: 2 (default: streamed bodies, WebSockets, flow control per connection) or 1 (the seed protocol)
  --control  v1 only: text (default) or binary: how the proxy sends control messages
  --max-body-bytes
             v1 only: the proxy's TUNNEL_MAX_BODY_BYTES when above its default (10485760); a v1 message
             larger than such a request body takes closes the tunnel with 1009
`;

const OPTIONS = {
  proxy: { type: 'string' },
  to: { type: 'string' },
  'tcp-to': { type: 'string' },
  token: { type: 'string' },
  control: { type: 'string' },
  protocol: { type: 'string' },
  'max-body-bytes': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function fail(message: string): never {
  process.stderr.write(`wsproxy-tunnel: ${shownText(message)}\n\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  tolerateWriteErrors(process.stderr);
  // The tunnel serves whether or not anyone reads its ready lines.
  tolerateWriteErrors(process.stdout, (err) => process.stderr.write(`wsproxy-tunnel: writing stdout failed: ${shownText(err.message)}; the tunnel runs on\n`));
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ options: OPTIONS, strict: true }));
  } catch (err) {
    // Not parseArgs's message for a stray argument: it quotes the argument, which may be a token.
    if ((err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') fail('unexpected argument: wsproxy-tunnel takes options only');
    // Nor for an unknown option: `--tokenSECRET` is one, value and all.
    if ((err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const typed = /'([^']*)'/.exec((err as Error).message)?.[1] ?? '';
      fail(`unknown option ${unknownOptionText(typed, Object.keys(OPTIONS).map((name) => `--${name}`))}`);
    }
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const token = (values.token as string | undefined) ?? process.env.WSPROXY_TOKEN;
  // What the proxy (or anything in front of it) says, or a mistyped option, may echo the token: it never reaches the terminal.
  secrets.push(token);
  const proxy = values.proxy as string | undefined;
  const to = values.to as string | undefined;
  const tcpTo = values['tcp-to'] as string | undefined;
  const control = (values.control as string | undefined) ?? 'text';
  const protocol = (values.protocol as string | undefined) ?? '2';
  if (!proxy || !/^wss?:\/\//i.test(proxy)) fail('--proxy must be a ws:// or wss:// URL');
  if (!to && !tcpTo) fail('give --to and/or --tcp-to');
  if (control !== 'text' && control !== 'binary') fail('--control must be text or binary');
  if (protocol !== '1' && protocol !== '2') fail('--protocol must be 1 or 2');
  const maxBodyRaw = values['max-body-bytes'] as string | undefined;
  if (maxBodyRaw !== undefined && !(/^\d+$/.test(maxBodyRaw) && Number(maxBodyRaw) <= 1024 * 1024 * 1024)) fail('--max-body-bytes must be an integer from 0 to 1073741824');
  const maxRequestBodyBytes = maxBodyRaw === undefined ? undefined : Number(maxBodyRaw);
  try {
    if (to) parseTarget(to);
    if (tcpTo) parseTarget(tcpTo);
  } catch (err) {
    fail((err as Error).message);
  }

  let client: TunnelClient;
  try {
    client = await TunnelClient.connect({ proxy, to, tcpTo, control, protocol: protocol === '1' ? 1 : 2, token, maxRequestBodyBytes });
  } catch (err) {
    const message = err instanceof TunnelRefusedError ? `refused: ${err.status} ${err.body}` : (err as Error).message;
    process.stderr.write(`wsproxy-tunnel: ${shownText(message)}\n`);
    process.exit(1);
  }

  // In place before the ready lines: whoever reads them may signal at once.
  onStopSignals(() => void client.close());
  const lines = [
    `tunnel url: ${shownText(client.tunnelUrl) || '(none: the proxy has no TUNNEL_DOMAIN)'}${to ? ` -> http://${shown(to)}` : ''}`,
    `raw port: ${client.rawPort || '(none)'}${tcpTo && client.rawPort ? ` -> ${shown(tcpTo)}` : ''}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  if (protocol === '2' && client.protocol !== 2) process.stderr.write(`note: the proxy speaks tunnel protocol v${client.protocol}; no WebSockets through this tunnel\n`);

  const { code, reason } = await client.closed;
  process.stderr.write(`tunnel closed: ${code}${reason ? ` ${shownText(reason)}` : ''}\n`);
  process.exit(code === 1000 || code === 1005 ? 0 : 1);
}

/** The token (from --token or WSPROXY_TOKEN), once known. */
const secrets: (string | undefined)[] = [process.env.WSPROXY_TOKEN];

/** Text from the proxy or an error, as the terminal gets it: no token, no control characters. */
function shownText(text: string): string {
  return printable(scrub(text, secrets));
}

main().catch((err: unknown) => {
  process.stderr.write(`wsproxy-tunnel: ${shownText(err instanceof Error ? err.message : String(err))}\n`);
  process.exit(1);
});

/** A local target as the client resolves it (a bare port is 127.0.0.1:port). */
function shown(target: string): string {
  const { host, port } = parseTarget(target);
  return hostPort(host, port);
}
