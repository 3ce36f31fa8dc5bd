#!/usr/bin/env node
/**
 * Markdown tables of a results file, for docs/performance.md:
 *
 *   node bench/report.mjs bench/results/<date>.json
 */
import { readFileSync } from 'node:fs';
import { fmt, verdict } from './lib/table.mjs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node bench/report.mjs <results.json>');
  process.exit(2);
}
const r = JSON.parse(readFileSync(file, 'utf8'));
const label = (id) => r.competitors[id]?.label ?? id;
const m = r.machine;
const out = [];
out.push(
  `Run of ${r.date.slice(0, 16).replace('T', ' ')} UTC, ${r.repeats} repeats${r.quick ? ' (quick)' : ''}, ${r.totalSeconds} s: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, ${m.platform}, Node ${m.node}, websockify ${m.websockify ?? 'absent'}, open-file limit ${m.nofile}, load average ${m.loadAvgAtStart.join(' / ')} at the start and ${m.loadAvgAtEnd.join(' / ')} at the end.`,
  '',
);
for (const f of r.figures) {
  out.push(`**${f.title}** — ${f.describe}`, '');
  out.push(`| | ${f.competitors.map(label).join(' | ')} |`);
  out.push(`|---|${f.competitors.map(() => '---:').join('|')}|`);
  for (const met of f.metrics) {
    const cells = f.competitors.map((c) => {
      const x = met.results[c];
      if (!x || !x.n) return '—';
      const range = x.min === x.max ? '' : ` <sub>${fmt(x.min, met.unit)}–${fmt(x.max, met.unit)}</sub>`;
      const ratio = x.ratio !== null && c !== f.baseline ? ` **${x.ratio.toFixed(2)}×**` : '';
      return `${fmt(x.median, met.unit)}${range}${ratio}`;
    });
    out.push(`| ${met.label}${met.unit && met.unit !== '/s' ? ` (${met.unit})` : met.unit === '/s' ? ' (/s)' : ''} | ${cells.join(' | ')} |`);
  }
  out.push('');
  const ts = f.metrics.flatMap((met) => met.targets);
  for (const t of ts) out.push(`- ${t.pass === true ? '✅' : t.pass === false ? '❌' : '➖'} ${t.text} → ${verdict(t)}`);
  for (const [c, why] of Object.entries(f.skipped ?? {})) out.push(`- skipped ${label(c)}: ${why}`);
  for (const [c, errs] of Object.entries(f.errors ?? {})) for (const e of errs) out.push(`- failed sample of ${label(c)}: ${e.split('\n')[0]}`);
  out.push('');
}
if (r.skippedFigures?.length) {
  out.push('Not run:', '');
  for (const p of r.skippedFigures) out.push(`- \`${p.id}\` — ${p.reason}`);
  out.push('');
}
process.stdout.write(out.join('\n'));
