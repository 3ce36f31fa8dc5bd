#!/usr/bin/env node
// Runs the compiled tests (tsc output in .build/) with Node's own test runner.
// Default: unit specs beside the code and e2e specs in test/.
// --system: the system tests (real sshd, real Chromium) in test/system/.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const system = args.includes('--system');
const filters = args.filter((a) => !a.startsWith('--'));

function walk(dir, out = []) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full, out);
    else out.push(full);
  }
  return out;
}

const all = [...walk('.build/src'), ...walk('.build/test')].filter((f) => f.endsWith('.js'));
let files = system
  ? all.filter((f) => f.endsWith('.system-spec.js'))
  : all.filter((f) => /[.-]spec\.js$/.test(f) && !f.endsWith('.system-spec.js'));
if (filters.length) files = files.filter((f) => filters.some((p) => f.includes(p)));
files.sort();
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ['--enable-source-maps', '--test', '--test-concurrency=2', '--test-timeout=300000', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
