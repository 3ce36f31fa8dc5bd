// Page side of the browser system tests. Everything here is what a browser SSH
// client does with the WebSocket API; the test calls these functions through
// Playwright and checks what they return. Each step is also shown in a table,
// which ends up in the screenshot.

import { PageTunnelClient, sha256Hex } from './tunnel-client.js';

const log = document.getElementById('log');
let steps = 0;

/** Appends a row to the visible log: status is 'ok', 'refused' or 'fail'. */
function show(step, status, detail) {
  const tr = document.createElement('tr');
  tr.className = status;
  for (const [text, cls] of [[String(++steps), ''], [step, ''], [status, 'status'], [detail, 'detail']]) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.append(td);
  }
  log.append(tr);
}

/** Drops the query's token from URLs shown on the page. */
function displayUrl(url) {
  const u = new URL(url);
  if (u.searchParams.has('token')) u.searchParams.set('token', 'redacted');
  return `${u.pathname}${u.search}`;
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms))),
  ]);
}

function randomBytes(n) {
  const out = new Uint8Array(n);
  // getRandomValues fills at most 65536 bytes per call.
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(out.subarray(off, Math.min(n, off + 65536)));
  return out;
}

/** Opens a WebSocket with binaryType arraybuffer and resolves once it is open (rejects on close first). */
function openSocket(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => resolve(ws);
    ws.onclose = (ev) => reject(new Error(`closed before open: ${ev.code} ${ev.reason}`));
  });
}

function closeAndWait(ws, code = 1000, reason = 'page done') {
  return new Promise((resolve) => {
    ws.onclose = (ev) => resolve({ code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
    ws.close(code, reason);
  });
}

/** Relay to an SSH server: reads the server's identification line. */
async function readBanner(url, timeoutMs = 15000) {
  try {
    const result = await withTimeout(
      (async () => {
        const ws = await openSocket(url);
        const messageTypes = new Set();
        const line = await new Promise((resolve, reject) => {
          const chunks = [];
          ws.onmessage = (ev) => {
            messageTypes.add(Object.prototype.toString.call(ev.data));
            chunks.push(new Uint8Array(ev.data));
            const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
            let off = 0;
            for (const c of chunks) {
              all.set(c, off);
              off += c.length;
            }
            const text = new TextDecoder().decode(all);
            const end = text.indexOf('\n');
            if (end !== -1) resolve(text.slice(0, end).replace(/\r$/, ''));
          };
          ws.onclose = (ev) => reject(new Error(`closed before the banner: ${ev.code} ${ev.reason}`));
        });
        const close = await closeAndWait(ws);
        return { banner: line, messageTypes: [...messageTypes], close };
      })(),
      timeoutMs,
      'banner',
    );
    show(`relay → sshd ${displayUrl(url)}`, 'ok', result.banner);
    return result;
  } catch (err) {
    show(`relay → sshd ${displayUrl(url)}`, 'fail', String(err));
    throw err;
  }
}

/**
 * Relay to an echo target: sends `total` random bytes in `chunk`-byte frames,
 * waits for all of them back, and hashes both sides with crypto.subtle.
 */
async function echo(url, total, chunk = 65536, timeoutMs = 60000) {
  const step = `relay echo ${total} bytes ${displayUrl(url)}`;
  try {
    const result = await withTimeout(
      (async () => {
        const data = randomBytes(total);
        const sentSha256 = await sha256Hex(data);
        const ws = await openSocket(url);
        const received = new Uint8Array(total);
        let got = 0;
        let frames = 0;
        let nonArrayBuffer = 0;
        const done = new Promise((resolve, reject) => {
          ws.onmessage = (ev) => {
            frames++;
            if (!(ev.data instanceof ArrayBuffer)) {
              nonArrayBuffer++;
              return;
            }
            const bytes = new Uint8Array(ev.data);
            if (got + bytes.length > total) return reject(new Error(`received more than sent: ${got + bytes.length}`));
            received.set(bytes, got);
            got += bytes.length;
            if (got === total) resolve();
          };
          ws.onclose = (ev) => reject(new Error(`closed after ${got} bytes: ${ev.code} ${ev.reason}`));
        });
        for (let off = 0; off < total; off += chunk) {
          ws.send(data.subarray(off, Math.min(total, off + chunk)));
          // Keep the browser's own send buffer modest, as a real client would.
          while (ws.bufferedAmount > 1024 * 1024) await new Promise((r) => setTimeout(r, 5));
        }
        await done;
        const close = await closeAndWait(ws);
        return { sent: total, received: got, frames, nonArrayBuffer, sentSha256, receivedSha256: await sha256Hex(received), close };
      })(),
      timeoutMs,
      'echo',
    );
    const same = result.sentSha256 === result.receivedSha256;
    show(step, same ? 'ok' : 'fail', `sha256 ${result.receivedSha256} (${same ? 'identical' : 'DIFFERENT'}), ${result.frames} frames`);
    return result;
  } catch (err) {
    show(step, 'fail', String(err));
    throw err;
  }
}

/**
 * Opens a WebSocket that is expected to be refused and reports what the page
 * could see: whether it opened, whether an error event fired, the close code
 * and reason.
 */
async function expectClose(label, url, timeoutMs = 15000) {
  const result = await withTimeout(
    new Promise((resolve) => {
      const seen = { opened: false, error: false };
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => (seen.opened = true);
      ws.onerror = () => (seen.error = true);
      ws.onclose = (ev) => resolve({ ...seen, code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
    }),
    timeoutMs,
    label,
  );
  show(`${label} ${displayUrl(url)}`, 'refused', `opened=${result.opened} error=${result.error} close ${result.code} "${result.reason}"`);
  return result;
}

const held = new Map();
let nextHeld = 1;

/** Opens a relay, proves it works with a short echo, and keeps it open; returns its handle. */
async function hold(url, timeoutMs = 15000) {
  const ws = await withTimeout(openSocket(url), timeoutMs, 'hold');
  const reply = new Promise((resolve) => (ws.onmessage = (ev) => resolve(new TextDecoder().decode(ev.data))));
  ws.send(new TextEncoder().encode('ping'));
  const echoed = await withTimeout(reply, timeoutMs, 'hold echo');
  const id = nextHeld++;
  held.set(id, ws);
  show(`hold relay #${id} ${displayUrl(url)}`, 'ok', `open, echoed "${echoed}"`);
  return id;
}

async function release(id) {
  const ws = held.get(id);
  held.delete(id);
  const close = await withTimeout(closeAndWait(ws), 10000, 'release');
  show(`release relay #${id}`, 'ok', `closed ${close.code}`);
  return close;
}

const tunnels = new Map();
let nextTunnel = 1;

/** Registers a tunnel; `control` is how this client sends its control messages. */
async function startTunnel(url, control) {
  const client = new PageTunnelClient(url, control);
  try {
    const ready = await client.start();
    const id = nextTunnel++;
    tunnels.set(id, client);
    show(`tunnel #${id} ${displayUrl(url)}`, 'ok', `ready: ${ready.tunnelUrl} rawPort ${ready.rawPort}`);
    return { id, ready };
  } catch (err) {
    show(`tunnel ${displayUrl(url)}`, 'fail', String(err));
    throw err;
  }
}

function tunnelStats(id) {
  return tunnels.get(id).snapshot();
}

function closeTunnelConnections(id) {
  tunnels.get(id).closeConnections();
  return tunnels.get(id).snapshot();
}

async function stopTunnel(id) {
  const client = tunnels.get(id);
  const close = await client.stop();
  const s = client.snapshot();
  show(
    `tunnel #${id} stopped`,
    'ok',
    `http ${s.httpRequests}, tcp opened ${s.tcpOpened} closed ${s.tcpClosedByProxy}+${s.tcpClosedByPage}, echoed ${s.tcpBytesEchoed} B; ` +
      `text frames ${s.textFrames}, binary control ${s.binaryControlFrames}, data ${s.dataFrames}; close ${close.code}`,
  );
  return { close, stats: s };
}

/** Lets the test add a line of its own (e.g. what it observed from outside). */
function note(step, status, detail) {
  show(step, status, detail);
}

document.getElementById('origin').textContent = `page origin: ${location.origin}`;
window.wsproxyPage = { readBanner, echo, expectClose, hold, release, startTunnel, tunnelStats, closeTunnelConnections, stopTunnel, note };
window.wsproxyPageReady = true;
