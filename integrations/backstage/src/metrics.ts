// What the follower counts, through Backstage's metrics service (the catalog's own convention):
// names under catalog.knative_event_mesh, labelled with the provider id.

import type { MetricsService } from '@backstage/backend-plugin-api/alpha';

type Attributes = Record<string, string>;

export interface FollowerMetrics {
  /** Watch connections opened (result: snapshot, resuming) or refused and failed. */
  connections: { add(value: number, attributes: Attributes): void };
  /** Snapshots taken after the first one, by reason (epoch, gap, gone, access, error). */
  resyncs: { add(value: number, attributes: Attributes): void };
  /** Mutations applied to the catalog, by type (full, delta) and result. */
  mutations: { add(value: number, attributes: Attributes): void };
  mutationDuration: { record(value: number, attributes: Attributes): void };
  /** Bytes of event data received, by event (snapshot, delta). */
  received: { add(value: number, attributes: Attributes): void };
}

export function followerMetrics(metrics: MetricsService, providerId: string): FollowerMetrics {
  const withProvider = (attributes: Attributes) => ({ ...attributes, provider: providerId });
  const counter = (name: string, description: string, unit?: string) => {
    const c = metrics.createCounter(`catalog.knative_event_mesh.${name}`, { description, unit });
    return { add: (value: number, attributes: Attributes) => c.add(value, withProvider(attributes)) };
  };
  const duration = metrics.createHistogram('catalog.knative_event_mesh.mutation.duration', {
    description: 'Time to apply one mutation to the catalog',
    unit: 's',
  });
  return {
    connections: counter('watch.connections', 'GET /v1/watch connections, by result'),
    resyncs: counter('resyncs', 'Snapshots taken because the stream could not continue, by reason'),
    mutations: counter('mutations', 'Catalog mutations, by type and result'),
    mutationDuration: {
      record: (value, attributes) => duration.record(value, withProvider(attributes)),
    },
    received: counter('received', 'Bytes of watch event data received, by event', 'By'),
  };
}
