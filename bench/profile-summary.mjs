#!/usr/bin/env node
/**
 * Summarizes a V8 .cpuprofile (from `npm run bench -- --profile DIR`): self
 * time by module (package, dist folder, node internals, GC) and the top
 * functions, excluding idle time.
 *
 *   node bench/profile-summary.mjs <file.cpuprofile> [topN] [--tree minPercent]
 *
 * `--tree 2` also prints the call tree (inclusive time), pruned below 2 %.
 */
import { readFileSync } from 'node:fs';

const argv = process.argv.slice(2);
const treeAt = argv.indexOf('--tree');
const treeMin = treeAt === -1 ? null : Number(argv.splice(treeAt, 2)[1]);
const [file, topArg] = argv;
if (!file) {
  console.error('usage: node bench/profile-summary.mjs <file.cpuprofile> [topN]');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const prof = JSON.parse(readFileSync(file, 'utf8'));

const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map();
for (let i = 0; i < prof.samples.length; i++) {
  const dt = prof.timeDeltas[i + 1] ?? 0;
  self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + dt);
}

function moduleOf(url, name) {
  if (!url) return name.startsWith('(') ? name : '(native)';
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  const dist = /\/dist\/([^/]+)/.exec(url);
  if (dist) return `dist/${dist[1].replace(/\.js$/, '')}`;
  return url.replace(/^file:\/\//, '');
}

let total = 0;
const modules = new Map();
const funcs = new Map();
for (const [id, us] of self) {
  const n = byId.get(id);
  const { functionName, url, lineNumber } = n.callFrame;
  const name = functionName || '(anonymous)';
  if (name === '(idle)') continue;
  total += us;
  const mod = moduleOf(url, name);
  modules.set(mod, (modules.get(mod) ?? 0) + us);
  const key = `${name}  ${url ? `${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}` : ''}`;
  funcs.set(key, (funcs.get(key) ?? 0) + us);
}

const pct = (v) => ((100 * v) / total).toFixed(1).padStart(5) + '%';
console.log(`busy ${(total / 1000).toFixed(0)} ms (idle excluded)\n\nself time by module:`);
for (const [m, v] of [...modules].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(v)}  ${m}`);
console.log('\ntop functions (self):');
for (const [f, v] of [...funcs].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(v)}  ${f}`);

if (treeMin !== null) {
  const incl = new Map();
  const total2 = (n) => {
    if (incl.has(n.id)) return incl.get(n.id);
    let t = n.callFrame.functionName === '(idle)' ? 0 : self.get(n.id) ?? 0;
    for (const c of n.children ?? []) t += total2(byId.get(c));
    incl.set(n.id, t);
    return t;
  };
  const rootNode = prof.nodes[0];
  total2(rootNode);
  console.log(`\ncall tree (inclusive ≥ ${treeMin}%):`);
  const walk = (n, depth) => {
    for (const cid of n.children ?? []) {
      const c = byId.get(cid);
      const t = incl.get(c.id);
      if ((100 * t) / total < treeMin) continue;
      const { functionName, url, lineNumber } = c.callFrame;
      const where = url ? ` ${url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^node:/, '')}:${lineNumber + 1}` : '';
      console.log(`${pct(t)} ${'  '.repeat(depth)}${functionName || '(anonymous)'}${where}`);
      walk(c, depth + 1);
    }
  };
  walk(rootNode, 0);
}
