// With a token, plain wsproxy-connect's "cannot connect to URL: error" lost its ": " (the token scrubber ate it).
import { runCli, result } from './lib.mjs';
const r = await runCli(['ws://127.0.0.1:1/relay?host=a&port=1'], { env: { WSPROXY_TOKEN: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl' }, input: '' });
result(r.code === 255 && /token=\[REDACTED\]: connect ECONNREFUSED/.test(r.stderr) && !r.stderr.includes('c2lnbmF0dXJl'), `stderr=${JSON.stringify(r.stderr)}`);
