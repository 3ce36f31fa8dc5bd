import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type ServerOptions } from 'ws';
import { answerPings } from './answer-pings.js';
import { coalesceTrickledFrames } from './coalesce-trickle.js';
import { quietRedundantEnds } from './quiet-ends.js';

/** What an accepting server's site chooses; every other option is the proxy's. */
export interface AcceptingServerOptions {
  /** Largest message a client may send, bytes (may be changed per upgrade through `server.options.maxPayload`). */
  readonly maxPayload: number;
  /** The subprotocol to answer, as `ws`'s `handleProtocols`; without it, `ws` answers the first one the client offered. */
  readonly handleProtocols?: ServerOptions['handleProtocols'];
}

/** `ws`'s `WebSocket#setSocket` (lib/websocket.js; not in its types): builds the receiver, then reads the socket. */
type SetSocket = (this: WebSocket, socket: Duplex, head: Buffer, options: object) => void;
const setSocket = (WebSocket.prototype as unknown as { setSocket: SetSocket }).setSocket;

/**
 * A WebSocket accepted by the proxy. `ws` builds a server-side connection's
 * frame receiver in `setSocket`, and only listens for the socket's data at
 * its end, so what is installed here is in place before the first byte
 * (also one that came with the handshake) reaches the receiver.
 */
class AcceptedWebSocket extends WebSocket {
  setSocket(socket: Duplex, head: Buffer, options: object): void {
    setSocket.call(this, socket, head, options);
    coalesceTrickledFrames(this);
    quietRedundantEnds(this);
    answerPings(this);
  }
}

/**
 * A `WebSocketServer` (`noServer`: its owner routes the upgrades to
 * `handleUpgrade`) with the proxy's options: no compression, no client set,
 * and pings answered by `answerPings`, not by `ws`. Every WebSocket it
 * accepts gets, before it reads a byte, the bounds that keep a client from
 * making the proxy hold more than about what it sent (`coalesceTrickledFrames`,
 * `answerPings`) and `quietRedundantEnds`. Every accepting server of the
 * proxy is made here, so that none is without them.
 */
export function acceptingServer(options: AcceptingServerOptions): WebSocketServer {
  return new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    clientTracking: false,
    autoPong: false,
    maxPayload: options.maxPayload,
    handleProtocols: options.handleProtocols,
    WebSocket: AcceptedWebSocket,
  });
}
