import { Module } from '@nestjs/common';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';
import { CONNECTION_COUNTER_STORE, SHARED_COUNTER_STORE, type ConnectionCounterStore } from './connection-counter.store.js';
import { InMemoryCounterStore } from './in-memory-counter.store.js';
import { LimitsService } from './limits.service.js';

/** Counts in memory on a single node; with `REDIS_URL`, the cluster module's shared store. */
function chooseStore(config: WsproxyConfigType, shared: ConnectionCounterStore | undefined): ConnectionCounterStore {
  if (config.redisUrl === '') return new InMemoryCounterStore();
  if (!shared) throw new Error('REDIS_URL is set but the cluster module (SHARED_COUNTER_STORE) is not loaded');
  return shared;
}

@Module({
  providers: [
    {
      provide: CONNECTION_COUNTER_STORE,
      inject: [wsproxyConfig.KEY, { token: SHARED_COUNTER_STORE, optional: true }],
      useFactory: chooseStore,
    },
    LimitsService,
  ],
  exports: [LimitsService, CONNECTION_COUNTER_STORE],
})
export class LimitsModule {}
