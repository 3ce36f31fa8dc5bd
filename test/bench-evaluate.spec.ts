import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

// The bench's verdicts (bench/lib/evaluate.mjs): plain JavaScript outside the
// TypeScript build, loaded from the repository root at run time.
interface Target {
  pass: boolean | null;
  measured: number | null;
  note?: string;
}
interface Metric {
  targets: Target[];
}
type EvaluateFigure = (figure: object, params: object, samples: Record<string, (object | null)[]>, labels: Record<string, string>) => Metric[];

async function loadEvaluate(): Promise<EvaluateFigure> {
  const url = new URL('../../bench/lib/evaluate.mjs', import.meta.url).href;
  const mod = (await import(url)) as { evaluateFigure: EvaluateFigure };
  return mod.evaluateFigure;
}

const figure = {
  baseline: 'plain',
  subject: 'wsproxy',
  metrics: [
    { id: 'rate', label: 'setups/s', unit: '/s', targets: [{ vs: 'plain', op: '>=', value: 1.0 }] },
    { id: 'failures', label: 'failed setups', unit: '', ratio: false, targets: [{ op: '==', value: 0, agg: 'max' }] },
  ],
};
const labels = { wsproxy: 'wsproxy', plain: 'plain relay' };
const sample = (rate: number) => ({ rate, failures: 0 });

describe('bench verdicts', () => {
  it('judges the medians when every sample completed', async () => {
    const evaluate = await loadEvaluate();
    const [rate, failures] = evaluate(figure, {}, { wsproxy: [sample(120), sample(110), sample(130)], plain: [sample(100), sample(100), sample(100)] }, labels);
    assert.equal(rate!.targets[0]!.pass, true);
    assert.equal(rate!.targets[0]!.measured, 1.2);
    assert.equal(failures!.targets[0]!.pass, true);
  });

  it('fails a target whose subject lost a sample, however good the rest', async () => {
    const evaluate = await loadEvaluate();
    const [rate, failures] = evaluate(figure, {}, { wsproxy: [sample(200), null, sample(200)], plain: [sample(100), sample(100), sample(100)] }, labels);
    for (const t of [rate!.targets[0]!, failures!.targets[0]!]) {
      assert.equal(t.pass, false);
      assert.equal(t.note, 'wsproxy: 1 of 3 samples failed');
    }
  });

  it('leaves a ratio unjudged when the baseline lost a sample', async () => {
    const evaluate = await loadEvaluate();
    const [rate] = evaluate(figure, {}, { wsproxy: [sample(90), sample(90)], plain: [sample(100), null] }, labels);
    assert.equal(rate!.targets[0]!.pass, null);
    assert.equal(rate!.targets[0]!.note, 'plain relay: 1 of 2 samples failed');
  });
});
