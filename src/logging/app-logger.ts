import type { LoggerService } from '@nestjs/common';
import { pino, type Logger as Pino, type LevelWithSilent } from 'pino';

/** Creates the process-wide structured JSON logger (pino, stdout). */
export function createPino(level: LevelWithSilent): Pino {
  return pino({
    level,
    base: { service: 'wsproxy' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization'], censor: '[REDACTED]' },
  });
}

/** Adapts pino to Nest's LoggerService so framework and `new Logger(ctx)` lines are JSON too. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly pino: Pino) {}

  log(message: unknown, ...rest: unknown[]): void {
    this.write('info', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.write('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.write('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.write('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.write('trace', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.write('fatal', message, rest);
  }

  private write(level: 'info' | 'error' | 'warn' | 'debug' | 'trace' | 'fatal', message: unknown, rest: unknown[]): void {
    const context = typeof rest[rest.length - 1] === 'string' ? (rest[rest.length - 1] as string) : undefined;
    if (message instanceof Error) {
      this.pino[level]({ context, error: loggedError(message) }, message.message);
    } else if (typeof message === 'object' && message !== null) {
      this.pino[level]({ context, ...(message as object) });
    } else {
      this.pino[level]({ context }, String(message));
    }
  }
}

/**
 * What a log line keeps of an error: its name, code, message and stack. Not its
 * other properties: Node's errors carry their input there (`ERR_INVALID_URL`
 * keeps the whole URL, token included).
 */
function loggedError(err: Error): Record<string, unknown> {
  const code = (err as { code?: unknown }).code;
  return { type: err.name, ...(typeof code === 'string' ? { code } : {}), message: err.message, stack: err.stack };
}
