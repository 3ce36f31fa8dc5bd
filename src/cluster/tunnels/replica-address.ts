import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Inject, Injectable } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { hostPort } from '../../common/host-port.js';
import { wsproxyConfig, type WsproxyConfigType } from '../../config/wsproxy.config.js';

/**
 * The URL other replicas reach this one at: `CLUSTER_ADVERTISE_URL`, or —
 * when that is empty and `BIND_HOST` names one address (the configuration
 * refuses an empty advertise URL with a wildcard bind) — `http://BIND_HOST:<port
 * it listens on>`, known once the listener is up (`PORT=0` works).
 */
@Injectable()
export class ReplicaAddress {
  private derived = '';

  constructor(
    @Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  url(): string {
    if (this.config.clusterAdvertiseUrl) return this.config.clusterAdvertiseUrl.replace(/\/+$/, '');
    if (this.derived) return this.derived;
    const server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    const address = server?.address() as AddressInfo | null | undefined;
    if (!address || typeof address !== 'object' || !this.config.bindHost) return '';
    this.derived = `http://${hostPort(this.config.bindHost, address.port)}`;
    return this.derived;
  }
}
