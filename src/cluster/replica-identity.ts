import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { wsproxyConfig, type WsproxyConfigType } from '../config/wsproxy.config.js';

/**
 * Who this replica is in the cluster: a random id, new at every start (a
 * restarted replica is a new member; the old one's share simply expires), and
 * the URL other replicas reach it at.
 */
@Injectable()
export class ReplicaIdentity {
  readonly id = randomBytes(8).toString('hex');
  readonly advertiseUrl: string;

  constructor(@Inject(wsproxyConfig.KEY) config: WsproxyConfigType) {
    this.advertiseUrl = config.clusterAdvertiseUrl;
  }
}
