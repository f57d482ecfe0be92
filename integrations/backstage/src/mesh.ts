// The broadcaster's wire contract as this module reads it (docs/protocol.md in the broadcaster's
// repository): the entity JSON of GET /v1/getEventMesh, the watch stream's snapshot and the
// mesh-delta CloudEvent. Everything read off the wire is checked here, so the rest of the module
// works on values it can trust; a bad value is a MeshProtocolError naming the field.

/**
 * The four entity kinds of the mesh the catalog maps, as events name them. The broadcaster
 * sends others too (the rest of the Knative event graph, and kinds of newer versions): their
 * deltas only move the sequence (SkippedChange), and snapshot lists of them are not read.
 */
export type MeshKind = 'broker' | 'eventtype' | 'subscribable' | 'source';

export const meshKinds: readonly MeshKind[] = ['broker', 'eventtype', 'subscribable', 'source'];

export type StringMap = Record<string, string> | null;

export interface MeshReference {
  group: string;
  kind: string;
  namespace: string;
  name: string;
}

export interface MeshBroker {
  namespace: string;
  name: string;
  uid: string;
  labels: StringMap;
  annotations: StringMap;
  providedEventTypes: string[];
}

export interface MeshEventType {
  namespace: string;
  name: string;
  type: string;
  uid: string;
  description?: string;
  schemaURL?: string;
  schemaData?: string;
  labels: StringMap;
  annotations: StringMap;
  reference?: MeshReference;
  consumedBy: string[];
}

export interface MeshSubscribable {
  namespace: string;
  name: string;
  uid: string;
  labels: StringMap;
  annotations: StringMap;
  group: string;
  kind: string;
  providedEventTypes: string[];
}

export interface MeshSource {
  namespace: string;
  name: string;
  uid: string;
  labels: StringMap;
  annotations: StringMap;
  group: string;
  kind: string;
  providedEventTypeTypes: string[];
  providedEventTypes: string[];
  sink?: MeshReference;
}

export type MeshEntity = MeshBroker | MeshEventType | MeshSubscribable | MeshSource;

/** The whole mesh, as GET /v1/getEventMesh serves it. */
export interface EventMesh {
  brokers: MeshBroker[];
  eventTypes: MeshEventType[];
  sources: MeshSource[];
  subscribables: MeshSubscribable[];
}

/** The watch stream's `snapshot` event: the mesh after exactly `sequence` events of `epoch`. */
export interface MeshSnapshot {
  epoch: string;
  sequence: number;
  /** The broadcaster's cluster name (its events.cluster), when it has one. */
  cluster?: string;
  mesh: EventMesh;
}

export type ChangeOp = 'added' | 'updated' | 'deleted';

/** One entity change: the `data` of a mesh-delta CloudEvent. */
export interface MeshChange {
  key: string;
  kind: MeshKind;
  op: ChangeOp;
  epoch: string;
  sequence: number;
  /** The event's meshcluster extension, when the broadcaster has a cluster name. */
  cluster?: string;
  entity: MeshEntity;
}

/** A delta of a kind this module does not map: it is applied by counting its sequence. */
export interface SkippedChange {
  skipped: true;
  key: string;
  kind: string;
  op: ChangeOp;
  epoch: string;
  sequence: number;
  cluster?: string;
}

export class MeshProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MeshProtocolError';
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field<T>(
  obj: Record<string, unknown>,
  name: string,
  where: string,
  check: (v: unknown) => boolean,
  what: string,
): T {
  const value = obj[name];
  if (!check(value)) {
    throw new MeshProtocolError(`${where}.${name}: want ${what}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

const isString = (v: unknown) => typeof v === 'string';
const isNonEmptyString = (v: unknown) => typeof v === 'string' && v !== '';
const isSequence = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
/** A cluster name as docs/protocol.md fixes it: 1 to 63 letters, digits and -, alphanumeric at both ends. */
export const isClusterName = (v: unknown) => typeof v === 'string' && /^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$/.test(v);
const isOptionalCluster = (v: unknown) => v === undefined || isClusterName(v);

/** Checks one entity of the given kind: the members the mapping reads must have their types. */
export function parseEntity(kind: MeshKind, value: unknown, where: string): MeshEntity {
  if (!isObject(value)) {
    throw new MeshProtocolError(`${where}: want an object, got ${JSON.stringify(value)}`);
  }
  field(value, 'namespace', where, isNonEmptyString, 'a namespace');
  field(value, 'name', where, isNonEmptyString, 'a name');
  const stringMap = (v: unknown) =>
    v === null || v === undefined || (isObject(v) && Object.values(v).every(isString));
  field(value, 'labels', where, stringMap, 'an object of strings or null');
  field(value, 'annotations', where, stringMap, 'an object of strings or null');
  const stringList = (v: unknown) => v === undefined || (Array.isArray(v) && v.every(isString));
  switch (kind) {
    case 'eventtype':
      field(value, 'type', where, (v) => v === undefined || isString(v), 'a string');
      for (const name of ['description', 'schemaURL', 'schemaData']) {
        field(value, name, where, (v) => v === undefined || isString(v), 'a string');
      }
      field(value, 'consumedBy', where, stringList, 'a list of strings');
      break;
    case 'broker':
      field(value, 'providedEventTypes', where, stringList, 'a list of strings');
      break;
    case 'subscribable':
    case 'source':
      field(value, 'group', where, isString, 'a string');
      field(value, 'kind', where, isNonEmptyString, 'a kind');
      field(value, 'providedEventTypes', where, stringList, 'a list of strings');
      break;
  }
  return value as unknown as MeshEntity;
}

/** Checks the `data` of a `snapshot` event. */
export function parseSnapshot(value: unknown): MeshSnapshot {
  if (!isObject(value)) {
    throw new MeshProtocolError(`snapshot: want an object, got ${JSON.stringify(value)}`);
  }
  const epoch = field<string>(value, 'epoch', 'snapshot', isNonEmptyString, 'an epoch');
  const sequence = field<number>(value, 'sequence', 'snapshot', isSequence, 'a sequence');
  const cluster = field<string | undefined>(value, 'cluster', 'snapshot', isOptionalCluster, 'a cluster name');
  const mesh = field<Record<string, unknown>>(value, 'mesh', 'snapshot', isObject, 'an object');
  const lists: Array<[keyof EventMesh, MeshKind]> = [
    ['brokers', 'broker'],
    ['eventTypes', 'eventtype'],
    ['sources', 'source'],
    ['subscribables', 'subscribable'],
  ];
  const parsed: Partial<EventMesh> = {};
  for (const [list, kind] of lists) {
    const items = field<unknown[]>(mesh, list, 'snapshot.mesh', Array.isArray, 'a list');
    (parsed as Record<string, MeshEntity[]>)[list] = items.map((item, i) =>
      parseEntity(kind, item, `snapshot.mesh.${list}[${i}]`),
    );
  }
  const snapshot: MeshSnapshot = { epoch, sequence, mesh: parsed as EventMesh };
  if (cluster !== undefined) snapshot.cluster = cluster;
  return snapshot;
}

/** Checks a `delta` event (a structured mesh-delta CloudEvent) and returns its change. */
export function parseDelta(value: unknown): MeshChange | SkippedChange {
  if (!isObject(value)) {
    throw new MeshProtocolError(`delta: want a CloudEvent object, got ${JSON.stringify(value)}`);
  }
  const cluster = field<string | undefined>(value, 'meshcluster', 'delta', isOptionalCluster, 'a cluster name');
  const data = field<Record<string, unknown>>(value, 'data', 'delta', isObject, 'an object');
  const key = field<string>(data, 'key', 'delta.data', isNonEmptyString, 'an entity key');
  const parts = key.split('/');
  if (parts.length !== 4 || parts[1] === '' || parts[2] === '' || parts[3] === '') {
    throw new MeshProtocolError(`delta.data.key: want group/Kind/namespace/name, got ${JSON.stringify(key)}`);
  }
  const kindName = field<string>(data, 'kind', 'delta.data', isNonEmptyString, 'an entity kind');
  const op = field<ChangeOp>(
    data,
    'op',
    'delta.data',
    (v) => v === 'added' || v === 'updated' || v === 'deleted',
    'added, updated or deleted',
  );
  const epoch = field<string>(data, 'epoch', 'delta.data', isNonEmptyString, 'an epoch');
  const sequence = field<number>(data, 'sequence', 'delta.data', (v) => isSequence(v) && (v as number) > 0, 'a positive sequence');
  const inCluster = cluster === undefined ? {} : { cluster };
  if (!meshKinds.includes(kindName as MeshKind)) {
    return { skipped: true, key, kind: kindName, op, epoch, sequence, ...inCluster };
  }
  const kind = kindName as MeshKind;
  const entity = parseEntity(kind, data.entity, 'delta.data.entity');
  if (entity.namespace !== parts[2] || entity.name !== parts[3]) {
    throw new MeshProtocolError(
      `delta.data.entity: names ${entity.namespace}/${entity.name}, but the key is ${key}`,
    );
  }
  return { key, kind, op, epoch, sequence, ...inCluster, entity };
}
