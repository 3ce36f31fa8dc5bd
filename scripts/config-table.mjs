#!/usr/bin/env node
// Prints the README's configuration table from the one config schema (dist/config/config.schema.js).
// `--write` replaces the table between the config-table markers in README.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { CONFIG_VARS } from '../dist/config/config.schema.js';

const esc = (s) => String(s).replace(/\|/g, '\\|');
const rows = Object.values(CONFIG_VARS).map(
  (v) => `| \`${v.name}\` | ${v.default === '' ? '(empty)' : '`' + esc(v.default) + '`'} | ${esc(v.accepted)} | ${esc(v.description)} |`,
);
const table = ['| Variable | Default | Accepted | Meaning |', '| --- | --- | --- | --- |', ...rows].join('\n') + '\n';

if (process.argv.includes('--write')) {
  const readme = readFileSync('README.md', 'utf8');
  const next = readme.replace(
    /(<!-- config-table:start -->\n)[\s\S]*?(<!-- config-table:end -->)/,
    (_m, a, b) => a + table + b,
  );
  writeFileSync('README.md', next);
} else {
  process.stdout.write(table);
}
