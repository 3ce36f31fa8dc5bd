import type { ClientOptions } from 'ws';

const LOOPBACK_HOST = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

// Four stores: `fill` costs more than this on a 4-byte buffer, and it runs for every frame sent.
const zeroMask = (mask: Buffer): void => {
  mask[0] = 0;
  mask[1] = 0;
  mask[2] = 0;
  mask[3] = 0;
};

/**
 * `ws` client options for this URL's masking. Client frames are masked (RFC
 * 6455 §5.3) so that an intermediary that does not speak WebSocket can never
 * read attacker-chosen bytes as HTTP; a tunnel client carries bytes its
 * visitors choose. On loopback no intermediary can see the frames: there an
 * all-zero key leaves the payload as it is, and `ws` skips the copy and the
 * XOR on both ends. Everywhere else, `wss:` included (a TLS-inspecting proxy
 * reads the plaintext), `ws` keeps its random keys. Browsers always mask;
 * this is for the Node CLIs.
 */
export function maskingFor(url: URL): Pick<ClientOptions, 'generateMask'> {
  return LOOPBACK_HOST.test(url.hostname) ? { generateMask: zeroMask } : {};
}
