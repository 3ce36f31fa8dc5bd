import type { PortPool } from './port-pool.js';

/** Single-replica pool: a Map of claimed ports, scanned from the bottom of the range. */
export class InMemoryPortPool implements PortPool {
  private readonly owners = new Map<number, string>();

  constructor(
    readonly min: number,
    readonly max: number,
  ) {}

  claim(owner: string, from: number = this.min): Promise<number | null> {
    for (let port = Math.max(from, this.min); port <= this.max; port++) {
      if (!this.owners.has(port)) {
        this.owners.set(port, owner);
        return Promise.resolve(port);
      }
    }
    return Promise.resolve(null);
  }

  release(port: number, owner: string): Promise<void> {
    if (this.owners.get(port) === owner) this.owners.delete(port);
    return Promise.resolve();
  }

  ownerOf(port: number): Promise<string | null> {
    return Promise.resolve(this.owners.get(port) ?? null);
  }

  claimed(): Promise<number[]> {
    return Promise.resolve([...this.owners.keys()].sort((a, b) => a - b));
  }
}
