/** Turns raw samples into medians, ratios and target verdicts. */
import { summarize } from './stats.mjs';

const OPS = {
  '>=': (a, b) => a >= b,
  '<=': (a, b) => a <= b,
  '<': (a, b) => a < b,
  '>': (a, b) => a > b,
  '==': (a, b) => a === b,
};

/** Summaries per metric and competitor, ratios against the figure's baseline, and target verdicts. */
export function evaluateFigure(figure, params, samples, labels) {
  const metrics = figure.metrics.map((m) => {
    const results = {};
    for (const [comp, list] of Object.entries(samples)) {
      const values = list.map((s) => (s && typeof s[m.id] === 'number' ? s[m.id] : NaN));
      // A sample that threw (a byte check, a dropped connection) is kept as a count: its figure must not pass on the rest.
      results[comp] = { samples: values, failedSamples: list.filter((s) => s === null).length, ...summarize(values) };
    }
    const base = results[figure.baseline]?.median;
    for (const r of Object.values(results)) r.ratio = m.ratio === false || !(base > 0) ? null : r.median / base;
    const targets = (m.targets ?? []).map((t) => judge(figure, m, t, params, results, labels));
    return { id: m.id, label: m.label, unit: m.unit, better: m.better, info: Boolean(m.info), results, targets };
  });
  return metrics;
}

function judge(figure, metric, t, params, results, labels) {
  const value = typeof t.value === 'function' ? t.value(params) : t.value;
  const subj = results[figure.subject];
  const name = (c) => labels[c] ?? c;
  if (t.vs) {
    const a = subj?.median;
    const b = results[t.vs]?.median;
    const text = `${name(figure.subject)} ${t.op} ${value.toFixed(2)}× ${name(t.vs)}`;
    const base = { text, vs: t.vs, op: t.op, value };
    if (subj?.failedSamples) return { ...base, measured: null, pass: false, note: failedNote(name(figure.subject), subj) };
    if (!(a > 0) || !(b > 0)) return { ...base, measured: null, pass: null, note: `${name(t.vs)} not measured` };
    const ratio = a / b;
    if (results[t.vs].failedSamples) return { ...base, measured: ratio, pass: null, note: failedNote(name(t.vs), results[t.vs]) };
    return { ...base, measured: ratio, pass: OPS[t.op](ratio, value) };
  }
  const agg = t.agg ?? 'median';
  const measured = subj ? subj[agg === 'median' ? 'median' : agg] : NaN;
  const why = t.notJudged?.(params, measured);
  const text = `${name(figure.subject)} ${agg === 'median' ? '' : agg + ' '}${metric.label} ${t.op} ${value}${metric.unit ? ' ' + metric.unit : ''}`;
  const base = { text, op: t.op, value, agg };
  if (subj?.failedSamples) return { ...base, measured: null, pass: false, note: failedNote(name(figure.subject), subj) };
  if (!Number.isFinite(measured)) return { ...base, measured: null, pass: null, note: 'not measured' };
  if (why) return { ...base, measured, pass: null, note: why };
  return { ...base, measured, pass: OPS[t.op](measured, value) };
}

function failedNote(who, r) {
  return `${who}: ${r.failedSamples} of ${r.samples.length} samples failed`;
}
