// Follows one broadcaster's GET /v1/watch and keeps the catalog equal to its mesh: a snapshot
// becomes one full mutation, each delta one delta mutation carrying the entity's full state (or
// its removal). Continuity is checked on the stream's ids; anything it cannot continue from (a
// new epoch, a gap, a 410, a refused token, a mutation that failed) starts over with a snapshot.
// Every push.fullMutationInterval the whole replica is written again as one full mutation, so
// drift in the catalog heals without a new snapshot. Writes to the catalog go one at a time, in
// the order they were made.

import { LoggerService } from '@backstage/backend-plugin-api';
import { EntityProviderConnection } from '@backstage/plugin-catalog-node';
import { Entity } from '@backstage/catalog-model';
import { CONFIG_ROOT, ProviderConfig, readToken } from './config';
import { MeshProtocolError, MeshSnapshot } from './mesh';
import { FollowerMetrics } from './metrics';
import { CatalogChange, MeshReplica } from './replica';
import { openWatch, ResumePoint, WatchEvent, WatchRefusedError } from './watch';

/** Why the follower takes a snapshot: the metrics' and logs' reason label. */
export type ResyncReason = 'start' | 'epoch' | 'gap' | 'gone' | 'access' | 'error';

class Resync extends Error {
  constructor(
    readonly reason: ResyncReason,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The broadcaster names another cluster than the one configured: nothing is written, and it is
 * asked again (after the longest backoff) in case it is being redeployed.
 */
export class ClusterMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClusterMismatchError';
  }
}

export interface FollowerOptions {
  config: ProviderConfig;
  locationKey: string;
  connection: EntityProviderConnection;
  logger: LoggerService;
  metrics: FollowerMetrics;
}

export class MeshFollower {
  private readonly replica: MeshReplica;
  private resume: ResumePoint | undefined;
  private resyncReason: ResyncReason = 'start';
  /** The cluster the last snapshot named (undefined: a broadcaster without a cluster name). */
  private streamCluster: string | undefined;
  /** The catalog writes in flight, chained: each starts when the one before has ended. */
  private writes: Promise<void> = Promise.resolve();
  private healTimer: NodeJS.Timeout | undefined;
  private running: AbortSignal | undefined;

  constructor(private readonly options: FollowerOptions) {
    const { config } = options;
    this.replica = new MeshReplica({
      providerId: config.id,
      baseUrl: config.baseUrl,
      ...(config.naming === 'cluster' ? { cluster: config.cluster } : {}),
    });
  }

  /** Follows until signal aborts. Each run starts from a snapshot: another replica may have written since. */
  async run(signal: AbortSignal): Promise<void> {
    try {
      this.running = signal;
      await this.followUntil(signal);
    } finally {
      clearTimeout(this.healTimer);
      this.healTimer = undefined;
      this.running = undefined;
      // A periodic full mutation may still be writing: the run owns it.
      await this.writes;
    }
  }

  private async followUntil(signal: AbortSignal): Promise<void> {
    const { logger, config } = this.options;
    this.resume = undefined;
    this.resyncReason = 'start';
    let failures = 0;
    // Resyncs in a row with no delta applied between them: a stream that keeps failing right
    // after its snapshot must not turn into a loop of full mutations.
    let resyncStreak = 0;
    while (!signal.aborted) {
      try {
        const stream = await openWatch({
          baseUrl: config.baseUrl,
          token: readToken(config),
          resume: this.resume,
          signal,
          idleTimeoutMs: config.push.idleTimeoutMs,
        });
        const resume = this.resume as ResumePoint | undefined;
        this.options.metrics.connections.add(1, { result: resume ? 'resuming' : 'snapshot' });
        logger.info(
          resume
            ? `Following ${config.baseUrl}/v1/watch from ${resume.epoch} #${resume.id}`
            : `Following ${config.baseUrl}/v1/watch from a snapshot (${this.resyncReason})`,
        );
        const ended = await this.follow(stream, (event) => {
          failures = 0;
          if (event === 'delta') resyncStreak = 0;
        });
        if (ended === 'shutdown') {
          // The broadcaster is stopping: give it (or another replica) a moment.
          await sleep(config.push.minReconnectDelayMs, signal);
        } else if (ended === 'busy') {
          // As many streams as it may serve (sent only to clients that ask for no status codes).
          await sleep(config.push.maxReconnectDelayMs, signal);
        }
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof ClusterMismatchError) {
          this.options.metrics.connections.add(1, { result: 'wrong_cluster' });
          this.resume = undefined;
          logger.error(`${error.message}; nothing written, asking again in ${config.push.maxReconnectDelayMs} ms`);
          await sleep(config.push.maxReconnectDelayMs, signal);
          continue;
        }
        if (error instanceof Resync) {
          this.startOver(error.reason, error.message);
          resyncStreak++;
          if (resyncStreak > 1) {
            await sleep(backoff(resyncStreak - 1, config.push.minReconnectDelayMs, config.push.maxReconnectDelayMs), signal);
          }
          continue;
        }
        if (error instanceof WatchRefusedError && error.status === 410 && this.resume) {
          // The server cannot resume from our position: at once, a fresh stream.
          this.options.metrics.connections.add(1, { result: 'refused_410' });
          this.startOver('gone', error.message);
          continue;
        }
        failures++;
        if (error instanceof MeshProtocolError) {
          resyncStreak++;
        }
        const wait = backoff(Math.max(failures, resyncStreak), config.push.minReconnectDelayMs, config.push.maxReconnectDelayMs);
        if (error instanceof WatchRefusedError) {
          this.options.metrics.connections.add(1, { result: `refused_${error.status}` });
          if (error.status === 401 || error.status === 403) {
            this.startOver('access', error.message);
          }
          logger.warn(`${error.message}; retrying in ${Math.max(wait, error.retryAfterMs ?? 0)} ms`);
          await sleep(Math.max(wait, error.retryAfterMs ?? 0), signal);
          continue;
        }
        if (error instanceof MeshProtocolError) {
          // A stream we cannot read is not one to resume.
          this.startOver('error', `bad event from the broadcaster: ${error.message}`);
        } else {
          this.options.metrics.connections.add(1, { result: 'failed' });
        }
        logger.warn(`Watch stream of ${config.baseUrl} failed: ${describe(error)}; retrying in ${wait} ms`);
        await sleep(wait, signal);
      }
    }
    logger.info(`Stopped following ${config.baseUrl}`);
  }

  /** Reads one stream to its end; returns how it ended. */
  private async follow(stream: AsyncGenerator<WatchEvent>, onProgress: (event: 'snapshot' | 'delta') => void): Promise<string> {
    const { logger } = this.options;
    try {
      for await (const event of stream) {
        switch (event.type) {
          case 'snapshot':
            await this.applySnapshot(event.id, event.snapshot, event.bytes);
            onProgress('snapshot');
            break;
          case 'delta':
            await this.applyDelta(event);
            onProgress('delta');
            break;
          case 'position':
            if (this.resume && event.epoch === this.resume.epoch && event.id > this.resume.id) {
              this.resume.id = event.id;
              this.replica.sequence = event.sequence;
            }
            break;
          case 'end':
            logger.info(`Watch stream ended: ${event.event} (${event.reason})`);
            if (event.event === 'access') {
              // Our view changed: only a new snapshot shows what we may see now.
              throw new Resync('access', `access changed (${event.reason})`);
            }
            return event.event;
        }
      }
      return 'eof';
    } finally {
      await stream.return(undefined);
    }
  }

  private async applySnapshot(id: number, snapshot: MeshSnapshot, bytes: number): Promise<void> {
    const started = Date.now();
    this.checkCluster(snapshot.cluster);
    this.replica.load(snapshot);
    this.streamCluster = snapshot.cluster;
    const entities = this.replica.allEntities();
    await this.serial(() => this.writeAll(entities));
    this.resume = { epoch: snapshot.epoch, id };
    this.options.metrics.received.add(bytes, { event: 'snapshot' });
    this.options.logger.info(
      `Applied snapshot ${snapshot.epoch} #${snapshot.sequence}${snapshot.cluster ? ` of cluster ${snapshot.cluster}` : ''} as a full mutation: ` +
        `${entities.length} entities (${this.replica.size} in the mesh) in ${Date.now() - started} ms`,
    );
  }

  /**
   * A broadcaster that names its cluster must name the configured one: pointed at another
   * cluster's broadcaster, this provider would write (and, with naming: cluster, name) that
   * cluster's entities as its own. One that names none is taken to be the configured cluster.
   */
  private checkCluster(served: string | undefined): void {
    const { config } = this.options;
    if (config.cluster === undefined || served === undefined || served.toLowerCase() === config.cluster.toLowerCase()) {
      return;
    }
    throw new ClusterMismatchError(
      `${config.baseUrl} serves cluster ${JSON.stringify(served)}, but ${CONFIG_ROOT}.${config.id}.cluster is ${JSON.stringify(config.cluster)}`,
    );
  }

  /** One full mutation of the given entities; on success the next periodic one is due an interval later. */
  private async writeAll(entities: Entity[]): Promise<void> {
    await this.mutate('full', () =>
      this.options.connection.applyMutation({
        type: 'full',
        entities: entities.map((entity) => ({ entity, locationKey: this.options.locationKey })),
      }),
    );
    this.scheduleHeal();
  }

  private scheduleHeal(): void {
    clearTimeout(this.healTimer);
    if (!this.running || this.running.aborted) return;
    this.healTimer = setTimeout(() => void this.heal(), this.options.config.push.fullMutationIntervalMs);
    this.healTimer.unref();
  }

  /** The periodic full mutation: the replica as it stands, written again. */
  private async heal(): Promise<void> {
    const { logger } = this.options;
    try {
      await this.serial(async () => {
        // Only a replica the follower is keeping current (it has applied a snapshot of the
        // stream it follows) may be written; between streams the next snapshot will be.
        if (!this.resume || !this.running || this.running.aborted) return;
        const started = Date.now();
        const entities = this.replica.allEntities();
        await this.writeAll(entities);
        logger.info(`Applied the mesh again as a full mutation (push.fullMutationInterval): ${entities.length} entities in ${Date.now() - started} ms`);
      });
    } catch (error) {
      // Counted as a failed full mutation; the catalog keeps what it had, and the next interval tries again.
      logger.warn(`Periodic full mutation failed: ${describe(error)}`);
      this.scheduleHeal();
    }
  }

  /** Runs write after every write queued before it; its result is the caller's. */
  private serial(write: () => Promise<void>): Promise<void> {
    const next = this.writes.then(write);
    this.writes = next.catch(() => undefined);
    return next;
  }

  private async applyDelta(event: Extract<WatchEvent, { type: 'delta' }>): Promise<void> {
    const { change } = event;
    if (!this.resume) {
      throw new Resync('gap', `delta #${event.id} before any snapshot`);
    }
    if (change.epoch !== this.resume.epoch) {
      throw new Resync('epoch', `new epoch ${change.epoch} (was ${this.resume.epoch})`);
    }
    if (event.id !== this.resume.id + 1 || change.sequence !== event.id) {
      throw new Resync('gap', `delta #${event.id} (meshseq ${change.sequence}) after #${this.resume.id}`);
    }
    if (change.cluster !== this.streamCluster) {
      throw new Resync('error', `delta #${event.id} of cluster ${JSON.stringify(change.cluster)} on a stream of cluster ${JSON.stringify(this.streamCluster)}`);
    }
    if ('skipped' in change) {
      this.replica.skip(change.sequence); // a kind the catalog does not map
      this.resume.id = event.id;
      this.options.metrics.received.add(event.bytes, { event: 'delta' });
      return;
    }
    const catalogChange = this.replica.apply(change);
    await this.serial(() => this.mutate('delta', () => this.applyCatalogChange(catalogChange)));
    this.resume.id = event.id;
    this.options.metrics.received.add(event.bytes, { event: 'delta' });
    this.options.logger.debug(
      `Applied ${change.kind} ${change.op} ${change.key} (#${change.sequence}): ` +
        `${catalogChange.upserted.length} upserted, ${catalogChange.removed.length} removed`,
    );
  }

  private applyCatalogChange(change: CatalogChange): Promise<void> {
    const locationKey = this.options.locationKey;
    return this.options.connection.applyMutation({
      type: 'delta',
      added: change.upserted.map((entity) => ({ entity, locationKey })),
      removed: change.removed.map((entityRef) => ({ entityRef, locationKey })),
    });
  }

  private async mutate(type: 'full' | 'delta', apply: () => Promise<void>): Promise<void> {
    const started = Date.now();
    try {
      await apply();
    } catch (error) {
      this.options.metrics.mutations.add(1, { type, result: 'failed' });
      // The catalog may now hold less than we applied: only a full mutation makes it whole again.
      throw new Resync('error', `${type} mutation failed: ${describe(error)}`);
    }
    this.options.metrics.mutations.add(1, { type, result: 'applied' });
    this.options.metrics.mutationDuration.record((Date.now() - started) / 1000, { type });
  }

  private startOver(reason: ResyncReason, why: string): void {
    this.options.logger.warn(`Resyncing from a new snapshot: ${why}`);
    this.options.metrics.resyncs.add(1, { reason });
    this.resume = undefined;
    this.resyncReason = reason;
  }
}

/** Exponential backoff with full jitter, from min doubling up to max. */
export function backoff(failures: number, minMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(failures - 1, 30));
  return Math.round(minMs + Math.random() * (ceiling - minMs));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}
