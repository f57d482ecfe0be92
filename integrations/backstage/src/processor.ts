// The relations the published plugin's processor adds, the same way: an eventType API names its
// consumers' Backstage ids in metadata.consumedBy; each Component of the API's namespace whose
// backstage.io/kubernetes-id annotation is one of them gets consumesApi, and the API
// apiConsumedBy. The consumers are ordinary catalog entities, so they are looked up in the
// catalog (the mesh itself never is).

import { AuthService, LoggerService } from '@backstage/backend-plugin-api';
import { Entity } from '@backstage/catalog-model';
import {
  CatalogProcessor,
  CatalogProcessorEmit,
  CatalogService,
  processingResult,
} from '@backstage/plugin-catalog-node';
import { TYPE_EVENT_TYPE } from './entities';

export const ANNOTATION_KUBERNETES_ID = 'backstage.io/kubernetes-id';

/** Same name as the published plugin's processor, so its cached state carries over. */
export const PROCESSOR_NAME = 'knative-event-mesh-processor';

export class KnativeEventMeshProcessor implements CatalogProcessor {
  constructor(
    private readonly catalog: CatalogService,
    private readonly auth: AuthService,
    private readonly logger: LoggerService,
    private readonly pageLimit = 10000,
  ) {}

  getProcessorName(): string {
    return PROCESSOR_NAME;
  }

  async preProcessEntity(entity: Entity, _location: unknown, emit: CatalogProcessorEmit): Promise<Entity> {
    if (entity.kind !== 'API' || entity.spec?.type !== TYPE_EVENT_TYPE) {
      return entity;
    }
    const consumedBy = entity.metadata.consumedBy;
    if (!Array.isArray(consumedBy) || consumedBy.length === 0) {
      return entity;
    }
    const namespace = entity.metadata.namespace ?? 'default';
    const api = { kind: 'API', namespace, name: entity.metadata.name };
    for (const component of await this.consumers(namespace, consumedBy.map(String))) {
      const consumer = { kind: 'Component', namespace: component.metadata.namespace ?? 'default', name: component.metadata.name };
      emit(processingResult.relation({ type: 'apiConsumedBy', source: api, target: consumer }));
      emit(processingResult.relation({ type: 'consumesApi', source: consumer, target: api }));
    }
    return entity;
  }

  /** The Components of namespace whose kubernetes-id is one of ids, in one paged query. */
  private async consumers(namespace: string, ids: string[]): Promise<Entity[]> {
    const found: Entity[] = [];
    try {
      const credentials = await this.auth.getOwnServiceCredentials();
      let cursor: string | undefined;
      do {
        const page = await this.catalog.queryEntities(
          cursor
            ? { cursor, limit: this.pageLimit }
            : {
                filter: {
                  kind: 'component',
                  'metadata.namespace': namespace,
                  [`metadata.annotations.${ANNOTATION_KUBERNETES_ID}`]: ids,
                },
                limit: this.pageLimit,
              },
          { credentials },
        );
        found.push(...page.items);
        cursor = page.pageInfo.nextCursor;
      } while (cursor);
    } catch (error) {
      // As the published processor: the API is stored without these relations this time.
      this.logger.error(`Failed to find the consumers ${ids.join(', ')} in namespace ${namespace}: ${error}`);
      return [];
    }
    return found;
  }
}
