// 1a7825d: "a value that is set but blank is now refused at boot". METRICS_PORT=' ' is still read as
// empty: /metrics is then served on the public port, which METRICS_PORT exists to keep it off
// ("Serve /metrics on a separate listener (kept off the public port)"). Expected: refused at boot.
import { boot } from './lib.mjs';

const app = await boot({ METRICS_PORT: ' ' });
let verdict = 'FAIL';
try {
  if (app.exited) {
    console.log('boot refused:', app.output().trim().split('\n').pop());
    verdict = 'PASS';
  } else {
    const res = await fetch(`http://127.0.0.1:${app.port}/metrics`);
    const body = await res.text();
    console.log(`booted with METRICS_PORT=' '; GET /metrics on the public port: ${res.status} (${body.includes('wsproxy_') ? 'metrics' : 'no metrics'})`);
    verdict = res.status === 200 ? 'FAIL' : 'PASS';
  }
} finally {
  app.kill?.();
}
console.log(verdict);
process.exit(0);
