/**
 * `ResumableRelay` ships as an ES module a browser loads: its compiled file and
 * everything it imports must be relative ES imports of files without Node
 * built-ins, packages, `require`, `Buffer` or `process`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const IMPORT = /(?:^|[;\s])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[;\s])import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function withoutComments(code: string): string {
  return code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"])\/\/.*$/gm, '$1');
}

/** Every file the module loads, checked as it goes. */
function checkGraph(entry: string): string[] {
  const seen: string[] = [];
  const visit = (file: string): void => {
    if (seen.includes(file)) return;
    seen.push(file);
    assert.ok(existsSync(file), `${file} is missing`);
    const code = withoutComments(readFileSync(file, 'utf8'));
    assert.doesNotMatch(code, /\brequire\s*\(/, `${file} uses require`);
    assert.doesNotMatch(code, /\bBuffer\b/, `${file} uses Buffer`);
    assert.doesNotMatch(code, /\bprocess\./, `${file} uses process`);
    for (const m of code.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3];
      assert.ok(spec.startsWith('./') || spec.startsWith('../'), `${file} imports "${spec}": a browser cannot resolve it`);
      assert.ok(spec.endsWith('.js'), `${file} imports "${spec}" without .js`);
      visit(resolve(dirname(file), spec));
    }
  };
  visit(entry);
  return seen;
}

describe('ResumableRelay as a browser module', () => {
  it('the compiled module imports only relative, Node-free files', () => {
    const files = checkGraph(join(HERE, 'resumable-relay.js'));
    assert.ok(files.some((f) => f.endsWith('wire.js')), 'the wire format is loaded with it');
  });

  it('so does the shipped dist file, when built', (t) => {
    const dist = resolve(HERE, '../../../../dist/resume/client/resumable-relay.js');
    if (!existsSync(dist)) {
      t.diagnostic(`${dist} not built; the compiled test copy above is the same source`);
      return;
    }
    checkGraph(dist);
  });
});
