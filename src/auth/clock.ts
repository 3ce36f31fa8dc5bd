/** Injection token of the clock the auth services use (cache ages, token time checks). */
export const AUTH_CLOCK = Symbol('AUTH_CLOCK');
