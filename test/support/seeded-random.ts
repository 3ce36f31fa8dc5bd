/**
 * Seeded randomness for tests whose inputs are drawn at random: a run draws the same inputs again from the
 * same seed, so a failure can be replayed (TEST_SEED=<seed> npm test -- <file>).
 */

/** The seed a run uses when TEST_SEED is not set. */
export const DEFAULT_TEST_SEED = 0x5eed;

/** The run's seed: TEST_SEED (a whole number from 0 to 2^32 - 1) when set, else `DEFAULT_TEST_SEED`. */
export function testSeed(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TEST_SEED?.trim();
  if (raw === undefined || raw === '') return DEFAULT_TEST_SEED;
  const seed = Number(raw);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`TEST_SEED must be a whole number from 0 to ${0xffffffff}, not ${JSON.stringify(raw)}`);
  return seed;
}

/** mulberry32: numbers in [0, 1) like Math.random's, the same sequence for the same seed. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x100000000;
  };
}
