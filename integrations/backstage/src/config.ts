// Reads catalog.providers.knativeEventMesh.<id> once into typed values, with errors that name
// the offending key. The keys are the published plugin's (baseUrl, token, schedule), so an app
// config written for it works unchanged; tokenFile, push, cluster and naming are this module's
// additions. Each id is one broadcaster (one cluster) and one entity provider; with
// naming: cluster their entity names cannot collide, which is checked across ids here.

import * as fs from 'node:fs';
import {
  readSchedulerServiceTaskScheduleDefinitionFromConfig,
  SchedulerServiceTaskScheduleDefinition,
} from '@backstage/backend-plugin-api';
import { Config, readDurationFromConfig } from '@backstage/config';
import { durationToMilliseconds } from '@backstage/types';
import { isClusterName } from './mesh';

export const CONFIG_ROOT = 'catalog.providers.knativeEventMesh';

export interface PushSettings {
  /** The first wait before reconnecting after a failed attempt; it doubles, with jitter. */
  minReconnectDelayMs: number;
  /** The longest wait between attempts. */
  maxReconnectDelayMs: number;
  /** A stream that sends nothing, not even its 15 s heartbeat, for this long is dropped and resumed. */
  idleTimeoutMs: number;
  /**
   * How often the whole replica is written again as a full mutation while the stream runs, so
   * that whatever changed in the catalog behind the follower's back (an entity unregistered by
   * hand, a restored database) is put right without waiting for a resync.
   */
  fullMutationIntervalMs: number;
}

/**
 * How entities are named. `published`: namespace and name of the Kubernetes object, exactly as
 * the published plugin names them (the drop-in; one cluster). `cluster`: the cluster's name is
 * appended to every entity name (entities.ts, entityName), so several clusters' meshes share
 * one catalog without collisions.
 */
export type Naming = 'published' | 'cluster';

export const NAMINGS: readonly Naming[] = ['published', 'cluster'];

export interface ProviderConfig {
  id: string;
  baseUrl: string;
  /** Where the bearer token comes from; a file is read again at every connection (rotated tokens). */
  token: { value: string } | { file: string } | undefined;
  schedule: SchedulerServiceTaskScheduleDefinition;
  push: PushSettings;
  /**
   * The broadcaster's cluster name (its events.cluster), if configured: with naming: cluster it
   * is in every entity name; either way a broadcaster that says it serves another cluster is
   * refused.
   */
  cluster?: string;
  naming: Naming;
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
  fullMutationIntervalMs: 10 * 60_000,
};

/**
 * With naming: cluster, the longest cluster name: it leaves room for the object's name (cut
 * and hashed where needed, entities.ts) within Backstage's 63 characters.
 */
export const MAX_NAMING_CLUSTER = 52;

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
  const configs = providers.keys().map((id) => readProviderConfig(id, providers.getConfig(id)));
  checkFleet(configs);
  return configs;
}

/**
 * What no single provider can check: entity names must not collide across providers. Every
 * provider names its entities the same way, and with naming: cluster no two share a cluster
 * name (compared as the catalog compares refs, ignoring case).
 */
function checkFleet(configs: ProviderConfig[]): void {
  const at = (id: string, key: string) => `${CONFIG_ROOT}.${id}.${key}`;
  const first = configs[0];
  const clusters = new Map<string, string>();
  for (const c of configs) {
    if (c.naming !== first.naming) {
      throw new ProviderConfigError(
        at(c.id, 'naming'),
        `is ${c.naming}, but ${at(first.id, 'naming')} is ${first.naming}: every provider must name entities the same way, or their names can collide`,
      );
    }
    if (c.cluster === undefined) continue;
    const other = clusters.get(c.cluster.toLowerCase());
    if (other !== undefined) {
      throw new ProviderConfigError(
        at(c.id, 'cluster'),
        `${JSON.stringify(c.cluster)} is already the cluster of ${at(other, 'cluster')}: each broadcaster is one cluster, and its entities would collide`,
      );
    }
    clusters.set(c.cluster.toLowerCase(), c.id);
  }
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
    const delay = (key: 'minReconnectDelay' | 'maxReconnectDelay' | 'idleTimeout' | 'fullMutationInterval') =>
      pushConfig.has(key)
        ? guarded(`push.${key}`, () => durationToMilliseconds(readDurationFromConfig(pushConfig, { key })))
        : undefined;
    push.minReconnectDelayMs = delay('minReconnectDelay') ?? push.minReconnectDelayMs;
    push.maxReconnectDelayMs = delay('maxReconnectDelay') ?? push.maxReconnectDelayMs;
    push.idleTimeoutMs = delay('idleTimeout') ?? push.idleTimeoutMs;
    push.fullMutationIntervalMs = delay('fullMutationInterval') ?? push.fullMutationIntervalMs;
    if (push.minReconnectDelayMs <= 0) {
      throw new ProviderConfigError(at('push.minReconnectDelay'), 'must be longer than zero');
    }
    if (push.idleTimeoutMs < 20_000) {
      throw new ProviderConfigError(at('push.idleTimeout'), 'must be at least 20 s (the broadcaster sends a heartbeat every 15 s)');
    }
    if (push.maxReconnectDelayMs < push.minReconnectDelayMs) {
      throw new ProviderConfigError(at('push.maxReconnectDelay'), 'must not be shorter than push.minReconnectDelay');
    }
    if (push.fullMutationIntervalMs < 1000) {
      throw new ProviderConfigError(at('push.fullMutationInterval'), 'must be at least 1 s');
    }
  }

  const cluster = guarded('cluster', () => config.getOptionalString('cluster'));
  if (cluster !== undefined && !isClusterName(cluster)) {
    throw new ProviderConfigError(
      at('cluster'),
      `want the broadcaster's cluster name (1 to 63 letters, digits and -, starting and ending with a letter or digit), got ${JSON.stringify(cluster)}`,
    );
  }
  const naming = guarded('naming', () => config.getOptionalString('naming')) ?? 'published';
  if (!NAMINGS.includes(naming as Naming)) {
    throw new ProviderConfigError(at('naming'), `want ${NAMINGS.join(' or ')}, got ${JSON.stringify(naming)}`);
  }
  if (naming === 'cluster') {
    if (cluster === undefined) {
      throw new ProviderConfigError(at('cluster'), "naming: cluster needs the cluster's name (the broadcaster's events.cluster)");
    }
    if (cluster.length > MAX_NAMING_CLUSTER) {
      throw new ProviderConfigError(
        at('cluster'),
        `with naming: cluster, at most ${MAX_NAMING_CLUSTER} characters (it is part of every entity name, which Backstage limits to 63), got ${cluster.length}`,
      );
    }
  }

  return { id, baseUrl, token, schedule, push, cluster, naming: naming as Naming };
}

/** The bearer token for the next connection, if any. */
export function readToken(config: ProviderConfig): string | undefined {
  if (!config.token) return undefined;
  if ('value' in config.token) return config.token.value;
  return fs.readFileSync(config.token.file, 'utf8').trim();
}
