import { WebSocket, type ClientOptions } from 'ws';

/** The outcome of a WebSocket handshake that was refused with an HTTP status. */
export interface HttpRefusal {
  readonly status: number;
  readonly body: string;
}

/** Opens a WebSocket and resolves once open, or rejects with the HTTP refusal (status + body). */
export function openWs(url: string, options: ClientOptions & { protocols?: string | string[] } = {}): Promise<WebSocket> {
  const { protocols, ...rest } = options;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { perMessageDeflate: false, ...rest });
    track(ws);
    ws.once('open', () => {
      ws.off('error', reject);
      resolve(ws);
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body: body.trim() })));
    });
    ws.once('error', reject);
  });
}

/** Expects the handshake to be refused; resolves with the status and the reason text. */
export async function expectRefusal(url: string, options: ClientOptions & { protocols?: string | string[] } = {}): Promise<HttpRefusal> {
  try {
    const ws = await openWs(url, options);
    ws.terminate();
  } catch (err) {
    const e = err as { status?: number; body?: string };
    if (e.status !== undefined) return { status: e.status, body: e.body ?? '' };
    throw err;
  }
  throw new Error(`expected ${url} to be refused, but it opened`);
}

const closeEvents = new WeakMap<WebSocket, Promise<{ code: number; reason: string }>>();

/** Records the close event from the start, so `closed()` works even after the socket closed. */
export function track(ws: WebSocket): WebSocket {
  if (!closeEvents.has(ws)) {
    closeEvents.set(ws, new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))));
  }
  return ws;
}

/** Resolves with the close code and reason of `ws` (opened by `openWs` or passed to `track`). */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  track(ws);
  return closeEvents.get(ws)!;
}

/** Opens with `errors=close` semantics: resolves with the close code and reason the server sent right after opening. */
export async function expectCloseRefusal(url: string, options: ClientOptions = {}): Promise<{ code: number; reason: string }> {
  const ws = await openWs(url, options);
  return closed(ws);
}

/** Collects binary data from `ws` until it holds `bytes` bytes. */
export function receiveBytes(ws: WebSocket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onMessage = (data: Buffer): void => {
      chunks.push(data);
      total += data.length;
      if (total >= bytes) {
        ws.off('message', onMessage);
        resolve(Buffer.concat(chunks));
      }
    };
    ws.on('message', onMessage);
    ws.once('close', () => {
      if (total < bytes) reject(new Error(`closed after ${total} of ${bytes} bytes`));
    });
  });
}

/** Collects all binary data from `ws` until it closes. */
export function receiveAll(ws: WebSocket): Promise<{ data: Buffer; code: number; reason: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    ws.on('message', (data: Buffer) => chunks.push(data));
    ws.once('close', (code, reason) => resolve({ data: Buffer.concat(chunks), code, reason: reason.toString() }));
  });
}

/** Sends `payload` in `chunkSize` pieces, waiting for the socket buffer to drain between bursts. */
export async function sendChunked(ws: WebSocket, payload: Buffer, chunkSize = 64 * 1024): Promise<void> {
  for (let off = 0; off < payload.length; off += chunkSize) {
    ws.send(payload.subarray(off, off + chunkSize));
    if (ws.bufferedAmount > 1024 * 1024) {
      await new Promise<void>((r) => {
        const check = (): void => {
          if (ws.bufferedAmount < 256 * 1024 || ws.readyState !== WebSocket.OPEN) r();
          else setTimeout(check, 5);
        };
        check();
      });
    }
  }
}
