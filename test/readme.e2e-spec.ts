import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CONFIG_VARS, parseConfig } from '../src/config/config.schema.js';
import { DEFAULT_BLOCKED_TARGETS } from '../src/policy/blocklist.service.js';
import { REPO_ROOT } from './support/process.js';

it('README documents every configuration variable with its default', () => {
  const readme = readFileSync(`${REPO_ROOT}README.md`, 'utf8');
  const table = /<!-- config-table:start -->\n([\s\S]*?)<!-- config-table:end -->/.exec(readme)?.[1] ?? '';
  for (const v of Object.values(CONFIG_VARS)) {
    const row = table.split('\n').find((l) => l.startsWith(`| \`${v.name}\` |`));
    assert.ok(row, `${v.name} is in the README table (run: node scripts/config-table.mjs --write)`);
    const def = v.default === '' ? '(empty)' : '`' + v.default.replace(/\|/g, '\\|') + '`';
    assert.ok(row.includes(`| ${def} |`), `${v.name} default ${def} in README`);
  }
});

it('README writes the built-in blocklist as BLOCKED_TARGETS takes it, and completely', () => {
  const readme = readFileSync(`${REPO_ROOT}README.md`, 'utf8');
  assert.ok(readme.includes('`' + DEFAULT_BLOCKED_TARGETS.join(',') + '`'), 'the list in README matches DEFAULT_BLOCKED_TARGETS');
  const parsed = parseConfig({ BLOCKED_TARGETS: DEFAULT_BLOCKED_TARGETS.join(',') });
  assert.equal(parsed.blockedTargets.length, DEFAULT_BLOCKED_TARGETS.length, 'and the variable accepts it as written');
});
