/** The longest delay `setTimeout` honours; Node fires a longer one after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * An unref'd timeout of any length: a delay past `setTimeout`'s limit (about
 * 24.8 days) is waited out in steps. Returns its cancel.
 */
export function longTimeout(fire: () => void, ms: number, maxStepMs = MAX_TIMER_MS): () => void {
  let timer: NodeJS.Timeout;
  const arm = (left: number): void => {
    timer = left > maxStepMs ? setTimeout(() => arm(left - maxStepMs), maxStepMs) : setTimeout(fire, left);
    timer.unref();
  };
  arm(ms);
  return () => clearTimeout(timer);
}

/**
 * Arms one connection's `MAX_CONNECTION_S` deadline (up to a year). Returns its
 * cancel; with `seconds` 0 (unlimited) nothing is armed.
 */
export function armMaxAge(seconds: number, expire: () => void): () => void {
  return seconds > 0 ? longTimeout(expire, seconds * 1000) : UNARMED;
}

/** The cancel of a deadline that was never armed. */
export const UNARMED = (): void => undefined;
