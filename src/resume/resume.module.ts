import { Module } from '@nestjs/common';
import { ResumeService } from './resume.service.js';

/** Resumable relays (`resume=1`): the sessions that outlive their WebSockets. */
@Module({
  providers: [ResumeService],
  exports: [ResumeService],
})
export class ResumeModule {}
