/**
 * Polls `cond` every `intervalMs` until it holds, or rejects with
 * `timed out waiting for <what>` once `timeoutMs` have passed (a test fails
 * with a name instead of hanging). `cond` may be sync or async.
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition', intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
