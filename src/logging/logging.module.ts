import { Global, Module } from '@nestjs/common';
import type { Logger as Pino } from 'pino';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { createPino } from './app-logger.js';

/** Injection token of the pino logger for structured events (relay start/end, tunnels). */
export const PINO = Symbol('PINO');
export type { Pino };

@Global()
@Module({
  providers: [
    {
      provide: PINO,
      inject: [wsproxyConfig.KEY],
      useFactory: (config: WsproxyConfigType): Pino => createPino(config.logLevel),
    },
  ],
  exports: [PINO],
})
export class LoggingModule {}
