#!/usr/bin/env node
/**
 * `npm run bench [-- --quick] [--only a,b] [--skip a,b] [--repeats N] [--out file] [--chart file.svg] [--list]`
 *
 * Runs the built service (dist, production settings, auth on) against the
 * competitors on the same loopback targets, figure by figure, interleaving the
 * competitors and repeating each sample; prints a table and writes
 * bench/results/<date>.json. Method and latest numbers: docs/performance.md.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startAuth } from './lib/auth.mjs';
import { describeMachine } from './lib/machine.mjs';
import { effectiveNofile, ipcClient, spawnRaised, stopChild } from './lib/proc.mjs';
import { evaluateFigure } from './lib/evaluate.mjs';
import { figureTable, verdict } from './lib/table.mjs';
import { COMPETITORS, createPool, wsproxyEnv } from './proxies/registry.mjs';
import { FIGURES } from './figures/index.mjs';
import { renderChart } from './chart.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    repeats: { type: 'string' },
    only: { type: 'string' },
    skip: { type: 'string' },
    out: { type: 'string' },
    chart: { type: 'string' },
    set: { type: 'string', multiple: true },
    profile: { type: 'string' },
    competitors: { type: 'string' },
    diagnose: { type: 'boolean', default: false },
    against: { type: 'string' },
    list: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opts.help) {
  console.log(`usage: npm run bench -- [--quick] [--only ids] [--skip ids] [--repeats N] [--out file.json] [--chart file.svg] [--list]
  --quick    smaller sizes, 1 repeat: a smoke check in under a minute
  --only     comma-separated figure ids to run (see --list)
  --skip     comma-separated figure ids not to run
  --repeats  samples per competitor and figure (default 5; quick 1)
  --out      results file (default bench/results/<date>.json; -quick, -diagnose, -partial suffixes mark the other kinds)
  --chart    also write the ratio chart (SVG) there, e.g. docs/performance-ratios.svg
  --diagnose also run the figures' diagnostic competitors (pipeRelay alone: wsproxy's byte pipe without the framework)
  --competitors  only these competitor ids (exploration only; ratios need the baseline)
  --set      override a figure parameter, e.g. --set inflight=1 --set seconds=2 (exploration only)
  --against  DIR: also run the build in another checkout (DIR/dist/main.js) beside wsproxy in its figures, for an A/B of two builds in one interleaved run (exploration only)
  --profile  directory: run wsproxy and the plain relay with --cpu-prof there (numbers then include the profiler);
             summarize with node bench/profile-summary.mjs <file.cpuprofile>`);
  process.exit(0);
}
if (opts.list) {
  for (const f of FIGURES) console.log(`${f.id.padEnd(22)}${f.title}${f.requires ? `  [${f.requires({}) ?? 'available'}]` : ''}`);
  process.exit(0);
}

const quick = opts.quick;
const repeats = Number(opts.repeats ?? (quick ? 1 : 5));
const only = opts.only ? new Set(opts.only.split(',')) : null;
const skipIds = new Set(opts.skip ? opts.skip.split(',') : []);
const onlyComps = opts.competitors ? new Set(opts.competitors.split(',')) : null;
const log = (...a) => console.error(...a);
const overrides = Object.fromEntries(
  (opts.set ?? []).map((kv) => {
    const [k, v] = [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)];
    return [k, v !== '' && Number.isFinite(Number(v)) ? Number(v) : v];
  }),
);
const started = new Date();
const t0 = performance.now();

const labels = Object.fromEntries(Object.entries(COMPETITORS).map(([id, c]) => [id, c.label ?? id]));
const tmp = mkdtempSync(join(tmpdir(), 'wsproxy-bench-'));
const children = [];
let pool = null;
let auth = null;
let ctxForEnv = null;

async function cleanup() {
  if (pool) await pool.stopAll();
  for (const c of children) await stopChild(c);
  if (auth) await auth.close();
  rmSync(tmp, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => cleanup().finally(() => process.exit(130)));

function rotate(list, n) {
  const k = n % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

function summarizeSample(metrics, s) {
  return metrics
    .filter((m) => typeof s[m.id] === 'number')
    .map((m) => `${m.id} ${Number.isInteger(s[m.id]) ? s[m.id] : s[m.id].toFixed(m.unit === 'MiB' || m.unit === 'ms' ? 2 : 1)}${m.unit && m.unit !== '/s' ? ' ' + m.unit : ''}`)
    .join(', ');
}

async function main() {
  const nofile = effectiveNofile();
  const machine = describeMachine(nofile);
  log(`wsproxy bench${quick ? ' (quick)' : ''}: ${machine.cores} cores, ${machine.cpuModel}, node ${machine.node}, open-file limit ${nofile}, load ${machine.loadAvgAtStart.join(' ')}`);

  auth = await startAuth();
  const token = await auth.mint('bench-user');

  // The bench's own processes (targets, load generator) must not be what a figure
  // measures: glibc returning their freed send/receive buffers to the kernel costs
  // them page faults that vary with the traffic pattern of each competitor.
  const ownEnv = { ...process.env, MALLOC_TRIM_THRESHOLD_: '33554432' };
  const target = spawnRaised('node', [join(root, 'bench/targets/target-server.mjs')], { env: ownEnv, ipc: true, stdout: 'inherit', stderr: 'inherit' });
  children.push(target);
  const targetCtl = ipcClient(target, 'target server');
  const targets = await targetCtl.call({ type: 'ports' }, 15_000);

  const workerChild = spawnRaised('node', [join(root, 'bench/client/worker.mjs')], { env: ownEnv, ipc: true, stdout: 'inherit', stderr: 'inherit' });
  children.push(workerChild);
  const worker = ipcClient(workerChild, 'load generator');

  const nodeFlags = opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${resolve(opts.profile)}`] : [];
  let minted = 0;
  const mintMany = async (n) => {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await auth.mint('bench-user', `t${++minted}`));
    return out;
  };
  const againstRoot = opts.against ? resolve(opts.against) : null;
  const ctx = { root, againstRoot, tmp, quick, nofile, nodeFlags, auth: { jwksUrl: auth.jwksUrl, token, mintMany }, targets, targetCtl, worker };
  pool = createPool(ctx);
  ctx.pool = pool;
  ctxForEnv = ctx;

  const figuresOut = [];
  const skippedOut = [];
  for (const figure of FIGURES) {
    if ((only && !only.has(figure.id)) || skipIds.has(figure.id)) continue;
    const notHere = figure.requires?.(ctx);
    if (notHere) {
      skippedOut.push({ id: figure.id, title: figure.title, reason: notHere });
      log(`\n${figure.title}: skipped — ${notHere}`);
      continue;
    }
    const params = { ...figure.params(ctx), ...overrides };
    const skipped = { ...(figure.skipNotes ?? {}) };
    const comps = [];
    const against = opts.against && figure.subject === 'wsproxy' ? ['wsproxy-against'] : [];
    for (const id of [...figure.competitors, ...against, ...(opts.diagnose ? figure.diagnostic ?? [] : [])]) {
      if (onlyComps && !onlyComps.has(id)) continue;
      const why = COMPETITORS[id] ? COMPETITORS[id].available(ctx) : 'unknown competitor';
      if (why) skipped[id] = why;
      else comps.push(id);
    }
    if (!comps.includes(figure.subject) && !(onlyComps && comps.length > 0)) {
      skippedOut.push({ id: figure.id, title: figure.title, reason: skipped[figure.subject] });
      log(`\n${figure.title}: skipped — ${skipped[figure.subject]}`);
      continue;
    }
    const describe = figure.describe(params);
    log(`\n${figure.title} — ${describe}`);
    const figStart = performance.now();
    const load = loadavg()[0];
    const samples = Object.fromEntries(comps.map((c) => [c, []]));
    const extras = Object.fromEntries(comps.map((c) => [c, []]));
    const errors = {};
    const broken = new Set();
    if (figure.warmup && !figure.fresh) {
      // One unrecorded round per competitor: JIT, lazy module paths and the JWKS fetch are paid before the clock runs.
      for (const comp of comps) {
        try {
          await figure.warmup(ctx, await pool.get(comp), figure.perCompetitor?.[comp]?.(params) ?? params);
        } catch (err) {
          log(`  warm-up ${labels[comp]}: ${err.message.split('\n')[0]}`);
        }
      }
    }
    for (let rep = 0; rep < repeats; rep++) {
      for (const comp of rotate(comps, rep)) {
        if (broken.has(comp)) continue;
        let handle;
        try {
          handle = figure.fresh ? await pool.startFresh(comp) : await pool.get(comp);
        } catch (err) {
          broken.add(comp);
          skipped[comp] = `failed to start: ${err.message.split('\n')[0]}`;
          log(`  ${labels[comp]}: ${skipped[comp]}`);
          continue;
        }
        try {
          const s = await figure.sample(ctx, handle, figure.perCompetitor?.[comp]?.(params) ?? params);
          const { extra, ...values } = s;
          samples[comp].push(values);
          extras[comp].push(extra ?? null);
          log(`  [${rep + 1}/${repeats}] ${labels[comp].padEnd(30)} ${summarizeSample(figure.metrics, values)}`);
        } catch (err) {
          samples[comp].push(null);
          extras[comp].push(null);
          (errors[comp] ??= []).push(err.message);
          log(`  [${rep + 1}/${repeats}] ${labels[comp].padEnd(30)} error: ${err.message}`);
        } finally {
          if (figure.fresh) await handle.stop();
        }
      }
    }
    const ran = comps.filter((c) => !broken.has(c));
    const fig = {
      id: figure.id,
      title: figure.title,
      method: figure.method,
      describe,
      params,
      baseline: figure.baseline,
      subject: figure.subject,
      competitors: ran,
      skipped,
      errors,
      metrics: evaluateFigure(
        figure,
        params,
        Object.fromEntries(ran.map((c) => [c, samples[c]])),
        labels,
      ),
      extras,
      loadAvg1AtStart: Math.round(load * 100) / 100,
      seconds: Math.round((performance.now() - figStart) / 100) / 10,
    };
    figuresOut.push(fig);
    log(`  (${fig.seconds} s)`);
  }

  const result = {
    schema: 1,
    date: started.toISOString(),
    quick,
    diagnose: opts.diagnose,
    partial: Boolean(onlyComps || Object.keys(overrides).length || opts.against),
    against: opts.against ? resolve(opts.against) : null,
    only: only ? [...only] : null,
    overrides,
    repeats,
    totalSeconds: Math.round((performance.now() - t0) / 100) / 10,
    machine: { ...machine, loadAvgAtEnd: loadavg().map((v) => Math.round(v * 100) / 100) },
    // What wsproxy ran with (ports vary per instance; no secrets in it: the token travels in the URL).
    wsproxyEnv: Object.fromEntries(
      Object.entries(wsproxyEnv(ctxForEnv, 0)).filter(([k]) => !['PATH', 'HOME', 'PORT', 'CLERK_JWKS_URL'].includes(k)),
    ),
    competitors: Object.fromEntries(Object.entries(COMPETITORS).filter(([, c]) => !c.hidden).map(([id, c]) => [id, { label: c.label, description: c.description }])),
    figures: figuresOut,
    skippedFigures: skippedOut,
  };

  console.log('');
  for (const fig of figuresOut) {
    for (const line of figureTable(fig, labels)) console.log(line);
    console.log('');
  }
  const verdicts = figuresOut.flatMap((f) => f.metrics.flatMap((m) => m.targets.map((t) => ({ figure: f.id, metric: m.id, ...t }))));
  if (verdicts.length) {
    console.log('targets:');
    for (const v of verdicts) console.log(`  ${v.pass === true ? '✓' : v.pass === false ? '✗' : '·'} [${v.figure}] ${v.text} → ${verdict(v)}`);
  }
  for (const p of skippedOut) console.log(`  · [${p.id}] ${p.reason}`);

  const stamp = started.toISOString().slice(0, 16).replace(':', '-');
  const suffix = `${quick ? '-quick' : ''}${opts.diagnose ? '-diagnose' : ''}${onlyComps || Object.keys(overrides).length || opts.against ? '-partial' : ''}`;
  const out = opts.out ? resolve(opts.out) : join(root, 'bench/results', `${stamp}${suffix}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(`\nwrote ${out} (${result.totalSeconds} s)`);
  if (opts.chart) {
    const chart = resolve(opts.chart);
    writeFileSync(chart, renderChart(result));
    console.log(`wrote ${chart}`);
  }
}

main()
  .then(cleanup)
  .catch(async (err) => {
    console.error(err);
    await cleanup();
    process.exit(1);
  });
