// The mapping from mesh entities to Backstage entities. It reproduces what the published
// @knative-extensions/plugin-knative-event-mesh-backend 1.21.0 builds, member for member and in
// the same order (the catalog hashes entities, so the same order keeps a switch from that plugin
// from rewriting every entity): EventTypes are APIs of type eventType; Brokers, channels and
// sources are Components providing them.
//
// With naming: cluster (MappingContext.cluster set) the same mapping names every entity
// <name>.<cluster> instead, so the meshes of several clusters share one catalog: a cluster name
// has no dot, so the name splits back at its last dot and two clusters never meet on one ref.

import { createHash } from 'node:crypto';
import {
  ANNOTATION_LOCATION,
  ANNOTATION_ORIGIN_LOCATION,
  Entity,
  stringifyEntityRef,
} from '@backstage/catalog-model';
import {
  MeshBroker,
  MeshEntity,
  MeshEventType,
  MeshKind,
  MeshSource,
  MeshSubscribable,
} from './mesh';

export const TYPE_EVENT_TYPE = 'eventType';
export const TYPE_BROKER = 'broker';
export const SYSTEM = 'knative-event-mesh';
export const OWNER = 'knative';

/** With naming: cluster, the cluster an entity belongs to. */
export const ANNOTATION_CLUSTER = 'eventmesh.knative.dev/cluster';

/** Backstage's longest entity name. */
export const MAX_NAME = 63;

/** What every entity of one provider shares: its id (the lifecycle) and the broadcaster URL. */
export interface MappingContext {
  providerId: string;
  /** As configured, trailing slash included: the published plugin writes it so. */
  baseUrl: string;
  /** Set with naming: cluster only: the cluster put into every name. Unset, names are the published plugin's. */
  cluster?: string;
}

/**
 * The Backstage name of a Kubernetes object's name: the name itself, or with a cluster
 * <name>.<cluster>. Where that is longer than Backstage allows, the name is cut and ends in
 * the first 8 hex digits of its SHA-256 instead: <prefix>-<hash>.<cluster>, 63 characters.
 * It depends on nothing but its arguments, so a restart (of either side) names alike.
 */
export function entityName(name: string, cluster: string | undefined): string {
  if (cluster === undefined) {
    return name;
  }
  const whole = `${name}.${cluster}`;
  if (whole.length <= MAX_NAME) {
    return whole;
  }
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
  const keep = MAX_NAME - cluster.length - hash.length - 2;
  const prefix = name.slice(0, keep).replace(/[^A-Za-z0-9]+$/, '');
  return `${prefix}-${hash}.${cluster}`;
}

function annotationsOf(entity: MeshEntity, ctx: MappingContext): Record<string, string> {
  const annotations: Record<string, string> = { ...(entity.annotations ?? {}) };
  // Location first, then origin: the order the published plugin's chained assignment leaves.
  annotations[ANNOTATION_LOCATION] = `url:${ctx.baseUrl}`;
  annotations[ANNOTATION_ORIGIN_LOCATION] = `url:${ctx.baseUrl}`;
  if (ctx.cluster !== undefined) {
    annotations[ANNOTATION_CLUSTER] = ctx.cluster;
  }
  return annotations;
}

/** The refs of the provided EventTypes, given as <namespace>/<name>. */
function providesApis(provided: string[] | undefined, ctx: MappingContext): string[] {
  return (provided ?? []).map((eventType) => {
    if (ctx.cluster === undefined) {
      return `api:${eventType}`;
    }
    const slash = eventType.indexOf('/');
    return `api:${eventType.slice(0, slash + 1)}${entityName(eventType.slice(slash + 1), ctx.cluster)}`;
  });
}

export function eventTypeEntity(eventType: MeshEventType, ctx: MappingContext): Entity {
  const links = [];
  if (eventType.schemaURL) {
    links.push({ title: 'View external schema', icon: 'scaffolder', url: eventType.schemaURL });
  }
  const where = ctx.cluster === undefined ? '' : `${ctx.cluster}/`;
  const metadata: Entity['metadata'] = {
    name: entityName(eventType.name, ctx.cluster),
    namespace: eventType.namespace,
    description: eventType.description,
    labels: eventType.labels || {},
    annotations: annotationsOf(eventType, ctx),
    tags: [],
    links,
    title: `${eventType.type} - (${where}${eventType.namespace}/${eventType.name})`,
    consumedBy: eventType.consumedBy ?? [],
  };
  if (metadata.description === undefined) {
    delete metadata.description;
  }
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'API',
    metadata,
    spec: {
      type: TYPE_EVENT_TYPE,
      lifecycle: ctx.providerId,
      system: SYSTEM,
      owner: OWNER,
      definition: eventType.schemaData || '{}',
    },
  };
}

function componentEntity(entity: MeshEntity, type: string, provided: string[] | undefined, ctx: MappingContext): Entity {
  const metadata: Entity['metadata'] = {
    name: entityName(entity.name, ctx.cluster),
    namespace: entity.namespace,
    labels: entity.labels || {},
    annotations: annotationsOf(entity, ctx),
    tags: [],
  };
  if (ctx.cluster !== undefined) {
    metadata.title = `${entity.name} (${ctx.cluster})`;
  }
  return {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata,
    spec: {
      type,
      lifecycle: ctx.providerId,
      system: SYSTEM,
      owner: OWNER,
      providesApis: providesApis(provided, ctx),
    },
  };
}

export function brokerEntity(broker: MeshBroker, ctx: MappingContext): Entity {
  return componentEntity(broker, TYPE_BROKER, broker.providedEventTypes, ctx);
}

export function subscribableEntity(subscribable: MeshSubscribable, ctx: MappingContext): Entity {
  return componentEntity(subscribable, `${subscribable.group}:${subscribable.kind}`, subscribable.providedEventTypes, ctx);
}

export function sourceEntity(source: MeshSource, ctx: MappingContext): Entity {
  return componentEntity(source, `${source.group}:${source.kind}`, source.providedEventTypes, ctx);
}

/** The Backstage entity of one mesh entity. */
export function backstageEntity(kind: MeshKind, entity: MeshEntity, ctx: MappingContext): Entity {
  switch (kind) {
    case 'eventtype':
      return eventTypeEntity(entity as MeshEventType, ctx);
    case 'broker':
      return brokerEntity(entity as MeshBroker, ctx);
    case 'subscribable':
      return subscribableEntity(entity as MeshSubscribable, ctx);
    case 'source':
      return sourceEntity(entity as MeshSource, ctx);
  }
}

/**
 * The entity ref a mesh entity maps to: Brokers, channels and sources (of one cluster) can
 * share one. With a cluster (naming: cluster), its name is the cluster's.
 */
export function backstageRef(kind: MeshKind, entity: { namespace: string; name: string }, cluster?: string): string {
  return stringifyEntityRef({
    kind: kind === 'eventtype' ? 'API' : 'Component',
    namespace: entity.namespace,
    name: entityName(entity.name, cluster),
  });
}

/**
 * When mesh entities share one Component ref, the one the published plugin leaves in a catalog
 * it fills is shown: it lists brokers, then channels, then sources in one full mutation, and the
 * catalog keeps the last of equal refs. So a source wins over a channel, a channel over a Broker.
 * (The published plugin does not keep to it: every later poll flips the entity to the other one,
 * because the catalog skips the item whose hash it already stores.)
 */
export const precedence: readonly MeshKind[] = ['source', 'subscribable', 'broker', 'eventtype'];

/** The order the published plugin lists the entities of one mesh in. */
export const listingOrder: readonly MeshKind[] = ['eventtype', 'broker', 'subscribable', 'source'];
