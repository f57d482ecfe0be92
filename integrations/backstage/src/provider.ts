// The entity provider: the same provider name and location key as the published plugin's
// (knative-event-mesh-provider-<id>), so replacing that plugin keeps every entity and its uid.
// Instead of polling it runs one follower as a scheduled task of global scope: with several
// Backstage replicas, exactly one follows the broadcaster at a time.

import { LoggerService, SchedulerService } from '@backstage/backend-plugin-api';
import { EntityProvider, EntityProviderConnection } from '@backstage/plugin-catalog-node';
import { ProviderConfig } from './config';
import { MeshFollower } from './follower';
import { FollowerMetrics } from './metrics';

export class KnativeEventMeshPushProvider implements EntityProvider {
  private readonly logger: LoggerService;

  constructor(
    private readonly config: ProviderConfig,
    private readonly scheduler: SchedulerService,
    logger: LoggerService,
    private readonly metrics: FollowerMetrics,
  ) {
    this.logger = logger.child({ target: this.getProviderName() });
  }

  getProviderName(): string {
    return `knative-event-mesh-provider-${this.config.id}`;
  }

  async connect(connection: EntityProviderConnection): Promise<void> {
    const follower = new MeshFollower({
      config: this.config,
      locationKey: this.getProviderName(),
      connection,
      logger: this.logger,
      metrics: this.metrics,
    });
    await this.scheduler.scheduleTask({
      id: `${this.getProviderName()}:follow`,
      scope: 'global',
      ...this.config.schedule,
      fn: (signal) => follower.run(signal),
    });
  }
}
