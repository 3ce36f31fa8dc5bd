import type { Readable, Writable } from 'node:stream';
import { WebSocket } from 'ws';
import { QuietClose } from './quiet-close.js';
import { dropAfterError, explainProtocolCloses, protocolCloseCode } from '../common/protocol-close.js';

/**
 * `ws.bufferedAmount` at which the bridge stops reading its input until the
 * socket has flushed. Keeps a fast link busy without piling up memory when the
 * relay is slower than the input.
 */
export const INPUT_HIGH_WATER = 256 * 1024;

/**
 * Output bytes the bridge lets wait for the reader before it stops reading the
 * WebSocket. Reading on keeps the proxy's pings answered while a reader is
 * briefly slow (a paused terminal, a busy ssh): a paused WebSocket reads no
 * ping, and the proxy drops a peer that misses two. SSH's own windows keep far
 * less than this in flight.
 */
export const OUTPUT_BACKLOG = 8 * 1024 * 1024;

/**
 * After input EOF, how long the bridge waits with nothing received before it
 * closes the WebSocket. A WebSocket cannot half-close, so an answer to the
 * last input would otherwise be cut off (like `socat -t`).
 */
export const INPUT_END_LINGER_MS = 1_000;

const BINARY = { binary: true } as const;

/** Why the bridge ended. */
export type BridgeEndedBy =
  /** The relay closed the WebSocket (target closed, refusal with `errors=close`, error). */
  | 'remote'
  /** The input ended and nothing more came for the linger time; the bridge closed the WebSocket with 1000. */
  | 'input-end'
  /** `stop()` was called (a signal). */
  | 'stopped'
  /** Reading the input failed. */
  | 'input-error'
  /** Writing the output failed (the reader went away: EPIPE). */
  | 'output-error';

/** How a bridge ended. */
export interface BridgeResult {
  /** The WebSocket close code: 1000 normal, 1006 no close frame, 4xxx refusals, ... */
  readonly code: number;
  readonly reason: string;
  readonly endedBy: BridgeEndedBy;
  /** The input or output error, when `endedBy` is one of the error kinds. */
  readonly error?: Error;
  /** Bytes received from the WebSocket and written to the output. */
  readonly bytesIn: number;
  /** Bytes read from the input and sent on the WebSocket. */
  readonly bytesOut: number;
}

/** A running bridge. */
export interface StdioBridge {
  /** Resolves once the WebSocket is closed and everything received is flushed to the output. */
  readonly done: Promise<BridgeResult>;
  /** Stops reading the input and closes the WebSocket with 1000 after what was already sent. */
  stop(reason?: string): void;
}

export interface BridgeOptions {
  /** An open WebSocket, possibly paused (the bridge resumes it once it listens). */
  readonly ws: WebSocket;
  readonly input: Readable;
  readonly output: Writable;
  /** Pause the input while `ws.bufferedAmount` is at or above this; default INPUT_HIGH_WATER. */
  readonly highWater?: number;
  /** Whether to end `output` once the WebSocket closes (default true). */
  readonly endOutput?: boolean;
  /** Stop reading the WebSocket while this many output bytes wait; default OUTPUT_BACKLOG. */
  readonly outputBacklog?: number;
  /** After input EOF, close once nothing was received for this long; default INPUT_END_LINGER_MS. */
  readonly lingerMs?: number;
}

/**
 * Copies bytes between a byte stream pair (stdin/stdout) and a relay WebSocket,
 * with backpressure both ways:
 * - input → ws: when a frame would take `bufferedAmount` to the high-water
 *   mark, the input is paused until that frame has been written to the socket;
 * - ws → output: once `outputBacklog` bytes wait for the output, the
 *   WebSocket is paused until the output drains.
 * Input EOF stops sending; once nothing has been received for `lingerMs`, the
 * WebSocket is closed with 1000 (frames leave in order, the close frame
 * last), so what the far end answers to the last input still arrives. When
 * the WebSocket closes, the output is flushed before `done` resolves.
 */
export function bridgeStdio(options: BridgeOptions): StdioBridge {
  const { ws, input, output } = options;
  const highWater = options.highWater ?? INPUT_HIGH_WATER;
  const outputBacklog = options.outputBacklog ?? OUTPUT_BACKLOG;
  let bytesIn = 0;
  let bytesOut = 0;
  let endedBy: BridgeEndedBy | null = null;
  /** The close ws sent for a message of the proxy it refused (1009: over maxPayload). */
  let refused: { code: number; reason: string } | null = null;
  let error: Error | undefined;
  let inputDone = false;
  let wsPaused = false;
  /** The output's first error, whenever it came: what was received did not all reach the reader. */
  let outputError: Error | undefined;

  const setEnd = (by: BridgeEndedBy, err?: Error): void => {
    if (endedBy === null) {
      endedBy = by;
      error = err;
    }
  };

  const resumeInput = (err?: Error): void => {
    if (!err && !inputDone && ws.readyState === WebSocket.OPEN) input.resume();
  };

  const onInputData = (chunk: Buffer | string): void => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    bytesOut += buf.length;
    if (ws.bufferedAmount + buf.length >= highWater) {
      input.pause();
      ws.send(buf, BINARY, resumeInput);
    } else {
      ws.send(buf, BINARY);
    }
  };

  const stopInput = (): void => {
    if (inputDone) return;
    inputDone = true;
    input.off('data', onInputData);
    input.off('end', onInputEnd);
    input.pause();
  };

  const closeWs = (code: number, reason: string): void => {
    if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
    else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
  };

  // Nothing arrives while the bridge itself has stopped reading: that is not the far end being done.
  const quiet = new QuietClose(
    options.lingerMs ?? INPUT_END_LINGER_MS,
    () => wsPaused,
    () => {
      setEnd('input-end');
      closeWs(1000, '');
    },
  );

  function onInputEnd(): void {
    stopInput();
    quiet.start();
  }

  const onInputError = (err: Error): void => {
    setEnd('input-error', err);
    stopInput();
    closeWs(1011, 'input error');
  };

  const onOutputDrain = (): void => {
    if (wsPaused) {
      wsPaused = false;
      ws.resume();
    }
  };

  const onOutputError = (err: Error): void => {
    outputError ??= err;
    setEnd('output-error', err);
    stopInput();
    // Read on (and drop) so the close handshake can complete.
    if (wsPaused) {
      wsPaused = false;
      ws.resume();
    }
    // Nobody reads what the relay sends any more.
    closeWs(1000, 'output closed');
  };

  ws.on('message', (data: Buffer) => {
    if (endedBy === 'output-error') return;
    bytesIn += data.length;
    quiet.heard();
    if (!output.write(data) && output.writableLength >= outputBacklog && !wsPaused) {
      wsPaused = true;
      ws.pause();
    }
  });
  explainProtocolCloses(ws);
  // The 'close' event that follows carries the outcome; for a message ws refused (over maxPayload: 1009), the
  // code ws sent, and the socket is dropped soon if the proxy never answers that close.
  ws.on('error', (err: Error) => {
    const code = protocolCloseCode(err);
    if (code === null) return;
    refused ??= { code, reason: err.message };
    dropAfterError(ws, err);
  });

  input.on('data', onInputData);
  input.on('end', onInputEnd);
  input.on('error', onInputError);
  output.on('drain', onOutputDrain);
  output.on('error', onOutputError);
  input.resume();
  // openRelay hands the socket over paused so no early frame is missed.
  ws.resume();

  const done = new Promise<BridgeResult>((resolve) => {
    ws.once('close', (wsCode: number, reasonBuf: Buffer) => {
      const code = wsCode === 1006 && refused ? refused.code : wsCode;
      const reason = wsCode === 1006 && refused ? refused.reason : reasonBuf.toString();
      quiet.cancel();
      setEnd('remote');
      stopInput();
      output.off('drain', onOutputDrain);
      // A failed output reports the failure however the socket ended: bytes were lost.
      const result = (): BridgeResult => ({
        code,
        reason,
        endedBy: outputError ? 'output-error' : (endedBy ?? 'remote'),
        error: outputError ?? error,
        bytesIn,
        bytesOut,
      });
      // process.stdout is never destroyed by an error (Node "undestroys" its stdio streams):
      // after one, end() never calls back and no second 'error' comes, so there is nothing to wait for.
      if (outputError) return resolve(result());
      flush(output, options.endOutput ?? true).then(() => resolve(result()));
    });
  });

  return {
    done,
    stop(reason = 'client stopped'): void {
      setEnd('stopped');
      stopInput();
      closeWs(1000, reason);
    },
  };
}

/** Resolves once everything written to `output` has been handed on (or the output failed). */
function flush(output: Writable, end: boolean): Promise<void> {
  if (output.destroyed || output.writableFinished || output.errored) return Promise.resolve();
  return new Promise((resolve) => {
    const finish = (): void => {
      output.off('error', finish);
      output.off('close', finish);
      resolve();
    };
    output.once('error', finish);
    output.once('close', finish);
    if (end) {
      if (output.writableEnded) output.once('finish', finish);
      else output.end(finish);
    } else {
      output.write(Buffer.alloc(0), finish);
    }
  });
}
