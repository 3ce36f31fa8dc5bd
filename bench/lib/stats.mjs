/** Small statistics helpers: percentiles of samples, and median/min/max of repeats. */

/** Nearest-rank percentile of an unsorted numeric array (p in 0..100). */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  return percentileSorted(sorted, p);
}

/** Nearest-rank percentile of an already sorted array. */
export function percentileSorted(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Median, min and max of repeat results (NaN entries, i.e. failed samples, ignored). */
export function summarize(values) {
  const ok = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  if (ok.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const s = Float64Array.from(ok).sort();
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], n: s.length };
}
