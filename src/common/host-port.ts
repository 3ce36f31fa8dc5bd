/** `host:port` as a URL authority or a `Host` header has it: an IPv6 literal goes in brackets (once, if it has them already). */
export function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}
