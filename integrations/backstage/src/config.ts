// Reads catalog.providers.knativeEventMesh.<id> once into typed values, with errors that name
// the offending key. The keys are the published plugin's (baseUrl, token, schedule), so an app
// config written for it works unchanged; tokenFile and push are this module's additions.

import * as fs from 'node:fs';
import {
  readSchedulerServiceTaskScheduleDefinitionFromConfig,
  SchedulerServiceTaskScheduleDefinition,
} from '@backstage/backend-plugin-api';
import { Config, readDurationFromConfig } from '@backstage/config';
import { durationToMilliseconds } from '@backstage/types';

export const CONFIG_ROOT = 'catalog.providers.knativeEventMesh';

export interface PushSettings {
  /** The first wait before reconnecting after a failed attempt; it doubles, with jitter. */
  minReconnectDelayMs: number;
  /** The longest wait between attempts. */
  maxReconnectDelayMs: number;
  /** A stream that sends nothing, not even its 15 s heartbeat, for this long is dropped and resumed. */
  idleTimeoutMs: number;
}

export interface ProviderConfig {
  id: string;
  baseUrl: string;
  /** Where the bearer token comes from; a file is read again at every connection (rotated tokens). */
  token: { value: string } | { file: string } | undefined;
  schedule: SchedulerServiceTaskScheduleDefinition;
  push: PushSettings;
}

/**
 * The follower is one long task: it runs until the timeout, then the next run starts with a new
 * snapshot. The timeout also bounds how long another replica waits to take over from one that
 * died holding the task.
 */
export const DEFAULT_SCHEDULE: SchedulerServiceTaskScheduleDefinition = {
  frequency: { seconds: 30 },
  timeout: { minutes: 10 },
  initialDelay: { seconds: 0 },
};

export const DEFAULT_PUSH: PushSettings = {
  minReconnectDelayMs: 100,
  maxReconnectDelayMs: 5000,
  idleTimeoutMs: 45_000,
};

export class ProviderConfigError extends Error {
  constructor(key: string, problem: string) {
    super(`${key}: ${problem}`);
    this.name = 'ProviderConfigError';
  }
}

/** Every provider configured under catalog.providers.knativeEventMesh; none when the key is absent. */
export function readProviderConfigs(root: Config): ProviderConfig[] {
  const providers = root.getOptionalConfig(CONFIG_ROOT);
  if (!providers) {
    return [];
  }
  return providers.keys().map((id) => readProviderConfig(id, providers.getConfig(id)));
}

export function readProviderConfig(id: string, config: Config): ProviderConfig {
  const at = (key: string) => `${CONFIG_ROOT}.${id}.${key}`;
  const guarded = <T>(key: string, read: () => T): T => {
    try {
      return read();
    } catch (error) {
      if (error instanceof ProviderConfigError) throw error;
      throw new ProviderConfigError(at(key), (error as Error).message);
    }
  };

  const baseUrl = guarded('baseUrl', () => config.getString('baseUrl'));
  let parsed: URL;
  try {
    parsed = new URL(baseUrl);
  } catch {
    throw new ProviderConfigError(at('baseUrl'), `${JSON.stringify(baseUrl)} is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ProviderConfigError(at('baseUrl'), `want an http or https URL, got ${JSON.stringify(baseUrl)}`);
  }

  const tokenValue = guarded('token', () => config.getOptionalString('token'));
  const tokenFile = guarded('tokenFile', () => config.getOptionalString('tokenFile'));
  if (tokenValue !== undefined && tokenFile !== undefined) {
    throw new ProviderConfigError(at('tokenFile'), 'set token or tokenFile, not both');
  }
  let token: ProviderConfig['token'];
  if (tokenValue !== undefined) {
    if (tokenValue.trim() === '') {
      throw new ProviderConfigError(at('token'), 'is empty');
    }
    token = { value: tokenValue.trim() };
  } else if (tokenFile !== undefined) {
    try {
      fs.accessSync(tokenFile, fs.constants.R_OK);
    } catch (error) {
      throw new ProviderConfigError(at('tokenFile'), `cannot read ${tokenFile}: ${(error as Error).message}`);
    }
    token = { file: tokenFile };
  }

  const schedule = config.has('schedule')
    ? guarded('schedule', () =>
        readSchedulerServiceTaskScheduleDefinitionFromConfig(config.getConfig('schedule')),
      )
    : DEFAULT_SCHEDULE;

  const push = { ...DEFAULT_PUSH };
  if (config.has('push')) {
    const pushConfig = guarded('push', () => config.getConfig('push'));
    const delay = (key: 'minReconnectDelay' | 'maxReconnectDelay' | 'idleTimeout') =>
      pushConfig.has(key)
        ? guarded(`push.${key}`, () => durationToMilliseconds(readDurationFromConfig(pushConfig, { key })))
        : undefined;
    push.minReconnectDelayMs = delay('minReconnectDelay') ?? push.minReconnectDelayMs;
    push.maxReconnectDelayMs = delay('maxReconnectDelay') ?? push.maxReconnectDelayMs;
    push.idleTimeoutMs = delay('idleTimeout') ?? push.idleTimeoutMs;
    if (push.minReconnectDelayMs <= 0) {
      throw new ProviderConfigError(at('push.minReconnectDelay'), 'must be longer than zero');
    }
    if (push.idleTimeoutMs < 20_000) {
      throw new ProviderConfigError(at('push.idleTimeout'), 'must be at least 20 s (the broadcaster sends a heartbeat every 15 s)');
    }
    if (push.maxReconnectDelayMs < push.minReconnectDelayMs) {
      throw new ProviderConfigError(at('push.maxReconnectDelay'), 'must not be shorter than push.minReconnectDelay');
    }
  }

  return { id, baseUrl, token, schedule, push };
}

/** The bearer token for the next connection, if any. */
export function readToken(config: ProviderConfig): string | undefined {
  if (!config.token) return undefined;
  if ('value' in config.token) return config.token.value;
  return fs.readFileSync(config.token.file, 'utf8').trim();
}
