import { listenersInTunnelPool, type WsproxyConfig } from './config.schema.js';

/**
 * Settings that validate but weaken the service, each as one sentence for a
 * warning at boot: the operator may mean them (tests do), so they start.
 */
export function configWarnings(config: WsproxyConfig): string[] {
  const warnings: string[] = [];
  if (config.trustedProxies.some((entry) => /\/0$/.test(entry))) {
    warnings.push('TRUSTED_PROXIES includes a /0 range: every peer is a trusted proxy, so a client can choose its own address through X-Forwarded-For');
  }
  for (const [variable, port] of listenersInTunnelPool(config)) {
    warnings.push(`${variable} ${port} is inside the tunnel port pool (TUNNEL_PORT_MIN..TUNNEL_PORT_MAX): tunnels skip it`);
  }
  if (config.clerkJwksUrl !== '' && config.jwksRefetchCooldownS === 0) {
    warnings.push('JWKS_REFETCH_COOLDOWN_S is 0: every token naming an unknown kid fetches the JWKS again');
  }
  return warnings;
}
