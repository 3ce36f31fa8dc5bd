/** A source of the current time in milliseconds since the epoch. */
export interface Clock {
  now(): number;
}

/** Injection token of the clock the auth services use (cache ages, token time checks). */
export const AUTH_CLOCK = Symbol('AUTH_CLOCK');

/** The wall clock. */
export const systemClock: Clock = { now: () => Date.now() };
