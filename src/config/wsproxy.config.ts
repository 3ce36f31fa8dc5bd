import { registerAs, type ConfigType } from '@nestjs/config';
import { parseConfig } from './config.schema.js';

/**
 * Typed configuration namespace. Inject with
 * `@Inject(wsproxyConfig.KEY) private readonly config: WsproxyConfigType`.
 * `AppModule.forRoot` provides the already-validated value under this key.
 */
export const wsproxyConfig = registerAs('wsproxy', () => parseConfig(process.env));

export type WsproxyConfigType = ConfigType<typeof wsproxyConfig>;
