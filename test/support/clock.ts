import { Module, type DynamicModule } from '@nestjs/common';
import type { Clock } from '../../src/common/clock.js';

/** A clock the test moves by hand (milliseconds). */
export class ManualClock implements Clock {
  constructor(private t: number = Date.now()) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  /** Current time in whole seconds, for token claims. */
  seconds(): number {
    return Math.floor(this.t / 1000);
  }
}

@Module({})
class TestClockModule {}

/**
 * A module for `startApp`'s imports that gives `clock` to every service of
 * the app injecting `token` (optional clock seams that default to the wall clock).
 */
export function clockModule(token: symbol, clock: Clock): DynamicModule {
  return { module: TestClockModule, global: true, providers: [{ provide: token, useValue: clock }], exports: [token] };
}
