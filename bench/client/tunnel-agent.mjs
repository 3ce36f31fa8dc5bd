/**
 * The tunnel user's side, in its own process: the reference `TunnelClient`
 * from dist, forwarding subdomain HTTP to the target's http port and raw-port
 * TCP to its bulk port. Prints {"rawPort","tunnelUrl","subdomain"} once ready.
 * Arguments: <proxy ws URL> <http port> <tcp port>; token in WSPROXY_TOKEN;
 * TUNNEL_PROTOCOL=2 for tunnel protocol v2 (default v1).
 */
const [proxy, httpPort, tcpPort] = process.argv.slice(2);
const { TunnelClient } = await import(new URL('../../dist/tunnel/client/tunnel-client.js', import.meta.url).href);
const client = await TunnelClient.connect({
  proxy,
  token: process.env.WSPROXY_TOKEN,
  to: `127.0.0.1:${httpPort}`,
  tcpTo: `127.0.0.1:${tcpPort}`,
  control: process.env.TUNNEL_CONTROL === 'binary' ? 'binary' : 'text',
  protocol: process.env.TUNNEL_PROTOCOL === '2' ? 2 : 1,
});
console.log(JSON.stringify({ rawPort: client.rawPort, tunnelUrl: client.tunnelUrl, subdomain: client.subdomain }));
client.closed.then(({ code, reason }) => {
  console.error(`tunnel closed: ${code} ${reason}`);
  process.exit(code === 1000 ? 0 : 1);
});
process.on('SIGTERM', () => client.close().finally(() => process.exit(0)));
