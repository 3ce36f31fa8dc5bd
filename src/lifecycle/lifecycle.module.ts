import { Global, Module } from '@nestjs/common';
import { WsproxyEvents } from '../common/events.js';
import { DrainService } from './drain.service.js';

@Global()
@Module({ providers: [DrainService, WsproxyEvents], exports: [DrainService, WsproxyEvents] })
export class LifecycleModule {}
