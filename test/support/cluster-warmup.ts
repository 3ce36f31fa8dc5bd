/**
 * Waits while a cluster replica's readiness says the cluster state is warming
 * up (a new Redis, or one that lost its state: admissions are refused for one
 * liveness TTL), so a test starts on a replica that admits. Returns at once
 * when the replica is ready or unready for another reason; gives up after
 * `maxMs` and lets the test see whatever state there is.
 */
export async function untilClusterWarmedUp(baseUrl: string, maxMs = 15_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    const res = await fetch(`${baseUrl}/health/ready`);
    const body = await res.text();
    if (!body.includes('warming up')) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}
