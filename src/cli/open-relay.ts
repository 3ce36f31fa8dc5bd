import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import type { HandshakeRequest } from './connect-args.js';
import { maskingFor } from '../common/frame-masking.js';
import { readRefusalBody } from '../common/refusal-body.js';
import { RELAY_CLIENT_MAX_MESSAGE_BYTES } from '../common/client-message-limit.js';

/** How long the whole handshake (TCP, TLS, admission, the relay's dial) may take. */
export const HANDSHAKE_TIMEOUT_MS = 30_000;

/** The relay answered the upgrade with an HTTP status instead of a WebSocket. */
export class HandshakeRefused extends Error {
  override readonly name = 'HandshakeRefused';
  constructor(
    readonly status: number,
    readonly statusText: string,
    readonly reason: string,
  ) {
    super(`HTTP ${status}${statusText ? ` ${statusText}` : ''}${reason ? `: ${reason}` : ''}`);
  }
}

/**
 * Opens a `/relay` WebSocket (binary, no compression). Resolves once open,
 * with the socket paused (`ws.resume()`, or `bridgeStdio`, starts reading);
 * rejects with `HandshakeRefused` when the relay answers with a status, or with
 * the network error.
 */
export function openRelay(request: HandshakeRequest, handshakeTimeout = HANDSHAKE_TIMEOUT_MS): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const ws = new WebSocket(request.url, {
      perMessageDeflate: false,
      ...maskingFor(new URL(request.url)),
      handshakeTimeout,
      headers: request.headers,
      origin: request.origin,
      // Not ws's 100 MiB: the proxy sends reads of the target, 256 KiB at most; larger closes with 1009.
      maxPayload: request.maxMessageBytes ?? RELAY_CLIENT_MAX_MESSAGE_BYTES,
    });
    ws.binaryType = 'nodebuffer';
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      reject(err);
    };
    ws.on('error', fail);
    ws.once('open', () => {
      if (settled) return;
      settled = true;
      ws.off('error', fail);
      // Frames that came with the handshake response are emitted on the next
      // tick, before whoever awaits this promise can listen: hold them.
      ws.pause();
      resolve(ws);
    });
    ws.once('unexpected-response', (req, res: IncomingMessage) => {
      readRefusalBody(res, (reason) => {
        fail(new HandshakeRefused(res.statusCode ?? 0, res.statusMessage ?? '', reason));
        req.destroy();
      });
    });
  });
}
