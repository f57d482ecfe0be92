// The backend module: one push provider per catalog.providers.knativeEventMesh.<id>, and the
// processor that turns an API's consumedBy into relations.

import { coreServices, createBackendModule } from '@backstage/backend-plugin-api';
import { metricsServiceRef } from '@backstage/backend-plugin-api/alpha';
import { catalogProcessingExtensionPoint, catalogServiceRef } from '@backstage/plugin-catalog-node';
import { readProviderConfigs } from './config';
import { followerMetrics } from './metrics';
import { KnativeEventMeshProcessor } from './processor';
import { KnativeEventMeshPushProvider } from './provider';

export const catalogModuleKnativeEventMeshPush = createBackendModule({
  pluginId: 'catalog',
  moduleId: 'knative-event-mesh-push',
  register(env) {
    env.registerInit({
      deps: {
        catalog: catalogProcessingExtensionPoint,
        catalogApi: catalogServiceRef,
        auth: coreServices.auth,
        config: coreServices.rootConfig,
        logger: coreServices.logger,
        scheduler: coreServices.scheduler,
        metrics: metricsServiceRef,
      },
      async init({ catalog, catalogApi, auth, config, logger, scheduler, metrics }) {
        const providers = readProviderConfigs(config);
        logger.info(
          `Found ${providers.length} Knative Event Mesh provider configs: ${providers.map((p) => p.id).join(', ')}`,
        );
        catalog.addEntityProvider(
          providers.map((p) => new KnativeEventMeshPushProvider(p, scheduler, logger, followerMetrics(metrics, p.id))),
        );
        catalog.addProcessor(new KnativeEventMeshProcessor(catalogApi, auth, logger));
      },
    });
  },
});
