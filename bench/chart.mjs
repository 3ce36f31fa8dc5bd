#!/usr/bin/env node
/**
 * Renders the ratio chart of a results file as a self-contained SVG (no
 * dependencies): one group per metric, one bar per competitor, the figure's
 * baseline at 1.0 on a log scale. Bars are oriented so that right is better:
 * for lower-is-better metrics (latency, memory) the bar shows baseline/value,
 * and the label says so. Red ticks mark targets.
 *
 *   node bench/chart.mjs bench/results/<date>.json [out.svg]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fmt } from './lib/table.mjs';

const COLORS = { wsproxy: '#2563eb', websockify: '#d97706', direct: '#6b7280', tunnel: '#059669', 'tunnel-http': '#059669', 'direct-http': '#6b7280' };
const FALLBACK = ['#7c3aed', '#db2777', '#0891b2', '#65a30d'];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The chart rows: metrics that have ratios, with the competitors other than the baseline. */
function groups(result) {
  const out = [];
  for (const f of result.figures) {
    const baseLabel = result.competitors[f.baseline]?.label ?? f.baseline;
    for (const m of f.metrics) {
      if (m.info) continue;
      const bars = [];
      for (const comp of f.competitors) {
        if (comp === f.baseline) continue;
        const r = m.results[comp];
        if (!r || r.ratio === null || !(r.ratio > 0)) continue;
        const adv = m.better === 'lower' ? 1 / r.ratio : r.ratio;
        bars.push({ comp, label: result.competitors[comp]?.label ?? comp, ratio: r.ratio, adv, median: r.median });
      }
      if (bars.length === 0) continue;
      const base = m.results[f.baseline]?.median;
      // A target against another competitor sits at value × that competitor's ratio to the baseline.
      const targetAdv = (m.targets ?? [])
        .filter((t) => t.vs && (t.vs === f.baseline || m.results[t.vs]?.ratio > 0))
        .map((t) => {
          const r = t.value * (t.vs === f.baseline ? 1 : m.results[t.vs].ratio);
          return { adv: m.better === 'lower' ? 1 / r : r, pass: t.pass };
        });
      out.push({
        title: `${f.title.replace(/[,:].*$/, '')}: ${m.label}`,
        sub: ` — 1× = ${baseLabel}, ${fmt(base, m.unit)}${m.unit && m.unit !== '/s' ? ' ' + m.unit : ''}${m.better === 'lower' ? ' (lower is better, bar = baseline ÷ value)' : ''}`,
        subject: f.subject,
        bars,
        targetAdv,
      });
    }
  }
  return out;
}

/** SVG text of the chart for a parsed results object. */
export function renderChart(result) {
  const gs = groups(result);
  const W = 900;
  const left = 250;
  const plotW = 430;
  const rowH = 18;
  const groupPad = 34;
  const top = 70;
  let h = top;
  for (const g of gs) h += groupPad + g.bars.length * rowH;
  h += 50;
  const lo = Math.log2(1 / 16);
  const hi = Math.log2(16);
  const x = (v) => left + ((Math.min(hi, Math.max(lo, Math.log2(v))) - lo) / (hi - lo)) * plotW;
  const colorOf = new Map();
  let fb = 0;
  const color = (c) => {
    if (!colorOf.has(c)) colorOf.set(c, COLORS[c] ?? FALLBACK[fb++ % FALLBACK.length]);
    return colorOf.get(c);
  };

  const parts = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${h}" fill="#ffffff"/>`);
  const m = result.machine;
  parts.push(`<text x="16" y="24" font-size="16" font-weight="600">wsproxy against its baselines — ratio of medians (log scale, right is better)</text>`);
  parts.push(
    `<text x="16" y="44" fill="#555">${esc(`${result.date.slice(0, 16).replace('T', ' ')} UTC · ${m.cores} cores ${m.cpuModel} · node ${m.node} · ${result.repeats} repeats${result.quick ? ' · QUICK RUN' : ''} · load ${m.loadAvgAtStart.join('/')}`)}</text>`,
  );
  // grid
  const ticks = [1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8, 16];
  for (const t of ticks) {
    const tx = x(t).toFixed(1);
    parts.push(`<line x1="${tx}" y1="${top - 8}" x2="${tx}" y2="${h - 40}" stroke="${t === 1 ? '#111' : '#ddd'}" stroke-width="${t === 1 ? 1.5 : 1}"${t === 1 ? '' : ' stroke-dasharray="3 3"'}/>`);
    parts.push(`<text x="${tx}" y="${h - 24}" text-anchor="middle" fill="#555">${t < 1 ? `1/${1 / t}` : t}×</text>`);
  }
  let y = top;
  for (const g of gs) {
    y += groupPad;
    parts.push(`<text x="16" y="${y - 14}" font-weight="600" stroke="#fff" stroke-width="4" paint-order="stroke">${esc(g.title)}<tspan font-weight="400" fill="#555">${esc(g.sub)}</tspan></text>`);
    for (const b of g.bars) {
      const x1 = x(1);
      const x2 = x(b.adv);
      const bx = Math.min(x1, x2);
      const bw = Math.max(1, Math.abs(x2 - x1));
      parts.push(`<text x="${left - 8}" y="${y + 13}" text-anchor="end">${esc(b.label)}</text>`);
      parts.push(`<rect x="${bx.toFixed(1)}" y="${y + 3}" width="${bw.toFixed(1)}" height="${rowH - 6}" fill="${color(b.comp)}" rx="2"/>`);
      parts.push(`<text x="${left + plotW + 12}" y="${y + 13}">${esc(`${b.ratio.toFixed(2)}× (${fmt(b.median, '')})`)}</text>`);
      if (b.comp === g.subject) {
        for (const t of g.targetAdv) {
          const tx = x(t.adv).toFixed(1);
          parts.push(`<line x1="${tx}" y1="${y}" x2="${tx}" y2="${y + rowH}" stroke="#dc2626" stroke-width="2.5"><title>target</title></line>`);
        }
      }
      y += rowH;
    }
  }
  parts.push(`<text x="16" y="${h - 8}" fill="#555">${esc('Red tick: the target for wsproxy. Raw median in parentheses. Each group names its baseline (1×).')}</text>`);
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [input, output] = process.argv.slice(2);
  if (!input) {
    console.error('usage: node bench/chart.mjs <results.json> [out.svg]');
    process.exit(2);
  }
  const svg = renderChart(JSON.parse(readFileSync(input, 'utf8')));
  if (output) writeFileSync(output, svg);
  else process.stdout.write(svg);
}
