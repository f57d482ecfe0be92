// A Backstage catalog module that follows an Event Mesh Broadcaster by push. The default export
// is the backend feature: backend.add(import('@event-mesh-broadcaster/plugin-catalog-backend-module-knative-event-mesh')).

export { catalogModuleKnativeEventMeshPush as default } from './module';
export { KnativeEventMeshPushProvider } from './provider';
export { KnativeEventMeshProcessor } from './processor';
export { readProviderConfigs, ProviderConfigError } from './config';
export type { ProviderConfig, PushSettings, Naming } from './config';
export { MeshFollower, ClusterMismatchError } from './follower';
export { MeshReplica } from './replica';
export { backstageEntity, backstageRef, entityName, precedence } from './entities';
export type { MeshChange, MeshSnapshot, EventMesh, MeshKind } from './mesh';
