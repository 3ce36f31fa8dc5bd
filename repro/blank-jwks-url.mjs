// 1a7825d: "Fail closed on blank settings: a value that is set but blank is now refused at boot".
// CLERK_JWKS_URL=' ' (a templated secret that rendered empty-ish) is still read as empty, which turns
// authentication OFF: the service boots and relays for anyone without a token. Expected: refused at boot.
import { createServer } from 'node:net';
import { boot } from './lib.mjs';
import WebSocket from 'ws';

const echo = createServer((s) => { s.on('error', () => s.destroy()); s.pipe(s); });
await new Promise((r) => echo.listen(0, '127.0.0.1', r));
let verdict = 'FAIL';
const app = await boot({ CLERK_JWKS_URL: ' ', JWT_ISSUER: 'https://issuer.example' });
try {
  if (app.exited) {
    console.log('boot refused:', app.output().trim().split('\n').pop());
    verdict = 'PASS';
  } else {
    const ws = new WebSocket(`ws://127.0.0.1:${app.port}/relay?host=127.0.0.1&port=${echo.address().port}`);
    const opened = await new Promise((r) => { ws.once('open', () => r(true)); ws.once('error', () => r(false)); setTimeout(() => r(false), 5000); });
    console.log(`booted with CLERK_JWKS_URL=' '; relay without a token opened: ${opened}`);
    ws.terminate();
    verdict = opened ? 'FAIL' : 'PASS';
  }
} finally {
  app.kill?.();
  echo.close();
}
console.log(verdict);
process.exit(0);
