// The configuration this module reads (Backstage validates app-config against it).
import { HumanDuration } from '@backstage/types';
import { SchedulerServiceTaskScheduleDefinitionConfig } from '@backstage/backend-plugin-api';

export interface Config {
  catalog?: {
    providers?: {
      /** One Event Mesh Broadcaster per id; the id is the entities' lifecycle and names the provider. */
      knativeEventMesh?: {
        [id: string]: {
          /** The broadcaster's URL, e.g. http://event-mesh-broadcaster.knative-eventing.svc:8080 */
          baseUrl: string;
          /**
           * A bearer token for the broadcaster.
           * @visibility secret
           */
          token?: string;
          /** A file holding the bearer token, read again at every connection (projected tokens rotate). */
          tokenFile?: string;
          /**
           * The broadcaster's cluster name (its events.cluster). A broadcaster that names another
           * cluster is refused; two ids may not share one.
           */
          cluster?: string;
          /**
           * How entities are named: `published` (default), namespace and name as the published
           * plugin does; `cluster`, `<name>.<cluster>`, so several clusters share one catalog.
           * Every id must use the same; `cluster` needs `cluster`.
           */
          naming?: 'published' | 'cluster';
          /** The follower task's schedule: it follows until the timeout, then starts over from a snapshot. */
          schedule?: SchedulerServiceTaskScheduleDefinitionConfig;
          push?: {
            /** The first wait before reconnecting after a failure (doubles, with jitter). Default 100 ms. */
            minReconnectDelay?: HumanDuration | string;
            /** The longest wait between reconnection attempts. Default 5 s. */
            maxReconnectDelay?: HumanDuration | string;
            /** A stream silent this long (no heartbeat) is dropped and resumed. Default 45 s, at least 20 s. */
            idleTimeout?: HumanDuration | string;
            /** How often the whole mesh is written again as one full mutation, healing drift. Default 10 min, at least 1 s. */
            fullMutationInterval?: HumanDuration | string;
          };
        };
      };
    };
  };
}
