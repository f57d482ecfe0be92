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
          /** The follower task's schedule: it follows until the timeout, then starts over from a snapshot. */
          schedule?: SchedulerServiceTaskScheduleDefinitionConfig;
          push?: {
            /** The first wait before reconnecting after a failure (doubles, with jitter). Default 100 ms. */
            minReconnectDelay?: HumanDuration | string;
            /** The longest wait between reconnection attempts. Default 5 s. */
            maxReconnectDelay?: HumanDuration | string;
            /** A stream silent this long (no heartbeat) is dropped and resumed. Default 45 s, at least 20 s. */
            idleTimeout?: HumanDuration | string;
          };
        };
      };
    };
  };
}
