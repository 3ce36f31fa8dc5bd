/** Plain-text table of a figure's results, for the terminal. */

export function fmt(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (unit === '' || unit === '/s') return Math.abs(v) >= 100 ? Math.round(v).toString() : v.toFixed(unit === '' ? 0 : 1);
  if (Math.abs(v) >= 1000) return Math.round(v).toString();
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function pad(s, n, right = false) {
  s = String(s);
  return right ? s.padStart(n) : s.padEnd(n);
}

/** Lines describing one evaluated figure. */
export function figureTable(fig, labels) {
  const lines = [];
  lines.push(`${fig.title} — ${fig.describe}`);
  const head = `  ${pad('metric', 30)}${pad('competitor', 30)}${pad('median', 10, true)}  ${pad('min–max', 21)}${pad('× ' + (labels[fig.baseline] ?? fig.baseline), 16)}`;
  lines.push(head);
  for (const m of fig.metrics) {
    let first = true;
    for (const comp of fig.competitors) {
      const r = m.results[comp];
      if (!r) continue;
      const name = first ? `${m.label}${m.unit ? ` (${m.unit})` : ''}` : '';
      first = false;
      const range = r.n ? `${fmt(r.min, m.unit)}–${fmt(r.max, m.unit)}` : '';
      const ratio = r.ratio === null || r.ratio === undefined || Number.isNaN(r.ratio) ? '' : `${r.ratio.toFixed(2)}×`;
      lines.push(`  ${pad(name, 30)}${pad(labels[comp] ?? comp, 30)}${pad(fmt(r.median, m.unit), 10, true)}  ${pad(range, 21)}${pad(ratio, 16)}`);
    }
    for (const t of m.targets) lines.push(`  ${pad('', 30)}target: ${t.text} → ${verdict(t)}`);
  }
  for (const [comp, reason] of Object.entries(fig.skipped ?? {})) lines.push(`  skipped ${labels[comp] ?? comp}: ${reason}`);
  for (const [comp, errs] of Object.entries(fig.errors ?? {})) for (const e of errs) lines.push(`  error ${labels[comp] ?? comp}: ${e}`);
  return lines;
}

export function verdict(t) {
  const m = t.measured === null ? '' : ` (${Number.isInteger(t.measured) ? t.measured : t.measured.toFixed(2)})`;
  if (t.pass === null) return `not judged${t.note ? ': ' + t.note : ''}`;
  return (t.pass ? 'PASS' : 'MISS') + m + (t.note ? `: ${t.note}` : '');
}
