import { Module } from '@nestjs/common';
import { CONNECTION_COUNTER_STORE } from './connection-counter.store.js';
import { InMemoryCounterStore } from './in-memory-counter.store.js';
import { LimitsService } from './limits.service.js';

@Module({
  providers: [{ provide: CONNECTION_COUNTER_STORE, useClass: InMemoryCounterStore }, LimitsService],
  exports: [LimitsService, CONNECTION_COUNTER_STORE],
})
export class LimitsModule {}
