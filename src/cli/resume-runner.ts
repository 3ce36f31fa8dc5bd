import type { Readable, Writable } from 'node:stream';
import { WebSocket } from 'ws';
import { ResumableRelay, type RelayCloseInfo, type WebSocketLike } from '../resume/client/resumable-relay.js';
import type { ConnectOptions } from './connect-args.js';
import { HANDSHAKE_TIMEOUT_MS } from './open-relay.js';
import { maskingFor } from '../common/frame-masking.js';
import { watchLiveness } from './liveness.js';
import { QuietClose } from './quiet-close.js';
import { onStopSignals } from './stop-signals.js';
import { INPUT_END_LINGER_MS, OUTPUT_BACKLOG } from './stdio-bridge.js';

export interface ResumeBridgeOptions {
  readonly options: ConnectOptions;
  readonly input: Readable;
  readonly output: Writable;
  /** Progress and failure messages (stderr). */
  readonly say: (message: string) => void;
}

/**
 * `wsproxy-connect --resume`: stdin/stdout over a `ResumableRelay` (Node, the
 * `ws` class), so an OpenSSH session outlives a dropped WebSocket. Backpressure
 * both ways: stdin pauses while too much is unacknowledged; a slow stdout holds
 * the acks back, so the proxy stops reading the target. Input EOF closes the
 * relay once nothing has arrived for `INPUT_END_LINGER_MS`; a connection that
 * hears nothing for `options.liveness.deadAfterMs` (65 s) is dropped and
 * reattached (`watchLiveness`).
 * Resolves with the exit status: 0 after a normal end (1000), 255 otherwise.
 */
export function runResumeBridge({ options, input, output, say }: ResumeBridgeOptions): Promise<number> {
  const carrier = options.tokenCarrier;
  // Why the last connection attempt failed, for a first attach that never opened (ECONNREFUSED is no refusal).
  let lastError: Error | null = null;
  /** The socket of the latest attach: the quiet close checks that it is alive. */
  let currentWs: WebSocket | null = null;
  const relay = new ResumableRelay({
    url: options.url.toString(),
    token: () => options.token,
    tokenCarrier: carrier === 'header' ? 'header' : 'query',
    createWebSocket: (url, protocols, token) => {
      const ws = new WebSocket(url, protocols, {
        perMessageDeflate: false,
        ...maskingFor(new URL(url)),
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
        origin: options.origin ?? undefined,
        headers: token !== null && carrier === 'header' ? { Authorization: `Bearer ${token}` } : {},
        // Not ws's 100 MiB: a larger message is refused (1009) before it is buffered; the relay ends.
        maxPayload: options.maxMessageBytes,
      });
      currentWs = ws;
      ws.on('error', (err: Error) => (lastError = err));
      // A path that dies silently would otherwise never be noticed, so never reattached.
      watchLiveness(ws, options.liveness);
      return ws as unknown as WebSocketLike;
    },
    attachTimeoutMs: HANDSHAKE_TIMEOUT_MS,
    maxMessageBytes: options.maxMessageBytes,
  });

  let outputFailed: Error | null = null;
  /** stdin failed: what the user sent did not all go out, whatever the relay's close code (as in plain mode: 255). */
  let inputFailed = false;
  let opened = false;
  let inputStopped = false;

  const onInput = (chunk: Buffer): void => {
    if (!relay.send(chunk)) input.pause();
  };
  const stopInput = (): void => {
    inputStopped = true;
    input.off('data', onInput);
    input.pause();
  };
  input.on('data', onInput);
  let held = false;
  // Quiet because we hold the relay (a slow reader) or are reattaching is not the far end being done.
  const quiet = new QuietClose(INPUT_END_LINGER_MS, () => held || relay.state !== 'open', () => closeOnceAlive());
  // A path that went dark (no RST) is quiet too, and closing then would be final: after the liveness
  // check drops it, the reattach would replay the last input and close at once, cutting off the answer.
  // So the quiet close first pings, and closes on the pong; anything heard, or a detach, meanwhile
  // starts the quiet over.
  let confirming: WebSocket | null = null;
  const closeOnceAlive = (): void => {
    const ws = currentWs;
    if (!ws || ws.readyState !== WebSocket.OPEN) return quiet.start();
    confirming = ws;
    ws.once('pong', () => {
      if (confirming !== ws) return;
      confirming = null;
      relay.close();
    });
    ws.ping();
  };
  const quietAgain = (): void => {
    if (confirming === null) return;
    confirming = null;
    quiet.start();
  };
  input.once('end', () => {
    stopInput();
    quiet.start();
  });
  input.once('error', (err) => {
    inputFailed = true;
    say(`reading stdin failed: ${err.message}`);
    stopInput();
    relay.close();
  });
  relay.on('drain', () => {
    if (!inputStopped) input.resume();
  });

  relay.on('data', (bytes) => {
    quiet.heard();
    quietAgain();
    if (outputFailed) return;
    // Up to OUTPUT_BACKLOG waits for a slow reader before the relay is held (as in plain mode:
    // over a plain fallback, holding it pauses the socket, and its pings with it).
    if (!output.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) && output.writableLength >= OUTPUT_BACKLOG) {
      held = true;
      relay.pause();
    }
  });
  output.on('drain', () => {
    held = false;
    relay.resume();
  });
  output.on('error', (err) => {
    outputFailed = err;
    stopInput();
    relay.resume();
    relay.close();
  });

  relay.on('open', () => (opened = true));
  relay.on('detach', ({ code }) => {
    say(`connection lost (${code}); reattaching`);
    quietAgain();
  });
  relay.on('reattach', () => say('reattached'));

  const offSignals = onStopSignals(() => {
    stopInput();
    relay.close();
  });

  return new Promise<number>((resolve) => {
    relay.on('close', (end: RelayCloseInfo) => {
      offSignals();
      quiet.cancel();
      confirming = null;
      stopInput();
      const status = (): number => {
        if (outputFailed) {
          // EPIPE: whoever read our output has gone (ssh exited); nothing to say.
          if ((outputFailed as NodeJS.ErrnoException).code === 'EPIPE') return 0;
          say(`writing stdout failed: ${outputFailed.message}`);
          return 255;
        }
        if (inputFailed) return 255;
        if (end.code === 1000) return 0;
        if (!opened && end.code === 1006) {
          // The relay's own reason (an attach that timed out: upgraded, but no session frame) says more
          // than the error of the socket it abandoned ("closed before the connection was established").
          const why = end.reason && end.reason !== 'connection failed' ? end.reason : lastError?.message || 'connection failed';
          say(`cannot connect to ${options.url.toString()}: ${why}`);
          return 255;
        }
        const what = opened ? 'relay closed the connection' : 'relay refused the connection';
        say(`${what}: ${end.code}${end.reason ? ` ${end.reason}` : ''}`);
        return 255;
      };
      // After an error process.stdout is not destroyed (Node "undestroys" its stdio streams) and end() never calls back.
      if (outputFailed || output.writableEnded || output.destroyed) return resolve(status());
      output.end(() => resolve(status()));
      output.once('error', () => resolve(status()));
    });
  });
}
