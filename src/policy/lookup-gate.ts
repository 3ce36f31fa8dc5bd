import { Refusal } from '../common/refusal.js';

/** How many name lookups may be in flight at once: per client (its limit key) and in all. */
export interface LookupBounds {
  readonly perClient: number;
  readonly total: number;
}

/**
 * Bounds the name lookups in flight and shares one lookup among the admissions
 * that ask for the same name at once.
 *
 * A lookup is counted from its start until the lookup itself settles, not
 * until its caller stops waiting: `getaddrinfo` holds a thread of libuv's pool
 * (shared with fs and crypto) until the system resolver gives up, however
 * long after `DNS_TIMEOUT_MS` that is. A lookup is charged to the client that
 * started it; joining one already in flight costs no thread and is never refused.
 */
export class LookupGate {
  /** The lookup in flight for each name. */
  private readonly inFlight = new Map<string, Promise<string[]>>();
  private readonly perClient = new Map<string, number>();

  constructor(private readonly bounds: LookupBounds) {}

  /** Lookups in flight now: in all, or started by `client`. */
  count(client?: string): number {
    return client === undefined ? this.inFlight.size : (this.perClient.get(client) ?? 0);
  }

  /**
   * The addresses `name` resolves to: the lookup in flight for it, or a new
   * one made by `lookup`, charged to `client`. Throws `Refusal(429)` when
   * `client` has its bound in flight, `Refusal(503)` when the total is.
   */
  run(name: string, client: string, lookup: (name: string) => Promise<string[]>): Promise<string[]> {
    const joined = this.inFlight.get(name);
    if (joined) return joined;
    if (this.count(client) >= this.bounds.perClient) throw new Refusal(429, 'too many name lookups from this IP', 'limit');
    if (this.inFlight.size >= this.bounds.total) throw new Refusal(503, 'too many name lookups in progress', 'capacity');
    const found = startLookup(lookup, name);
    this.inFlight.set(name, found);
    this.perClient.set(client, this.count(client) + 1);
    const settled = (): void => this.settle(name, client);
    found.then(settled, settled);
    return found;
  }

  private settle(name: string, client: string): void {
    this.inFlight.delete(name);
    const left = this.count(client) - 1;
    if (left > 0) this.perClient.set(client, left);
    else this.perClient.delete(client);
  }
}

/** `lookup(name)`, a synchronous throw included, as a promise. */
function startLookup(lookup: (name: string) => Promise<string[]>, name: string): Promise<string[]> {
  try {
    return lookup(name);
  } catch (err) {
    return Promise.reject(err);
  }
}
