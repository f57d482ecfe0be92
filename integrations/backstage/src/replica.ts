// The mesh as this module last received it, kept in memory: a snapshot replaces it, each delta
// changes one entity. It answers what the catalog should hold, never the other way round: the
// catalog is written from here and never read back.

import { Entity } from '@backstage/catalog-model';
import { backstageEntity, backstageRef, listingOrder, MappingContext, precedence } from './entities';
import { EventMesh, MeshChange, MeshEntity, MeshKind, MeshSnapshot } from './mesh';

interface Held {
  kind: MeshKind;
  entity: MeshEntity;
}

/** The catalog's side of one change: the refs to write (with their entity) or to remove. */
export interface CatalogChange {
  upserted: Entity[];
  removed: string[];
}

const meshLists: Array<[keyof EventMesh, MeshKind]> = [
  ['eventTypes', 'eventtype'],
  ['brokers', 'broker'],
  ['subscribables', 'subscribable'],
  ['sources', 'source'],
];

export class MeshReplica {
  epoch = '';
  sequence = 0;
  /** Mesh entities by kind and key; a key can belong to two kinds (protocol.md, caveats). */
  private readonly entities = new Map<string, Held>();
  /** Which mesh entities map to each Backstage ref (more than one when names collide). */
  private readonly byRef = new Map<string, Set<string>>();

  constructor(private readonly ctx: MappingContext) {}

  get size(): number {
    return this.entities.size;
  }

  /** Replaces everything with a snapshot. */
  load(snapshot: MeshSnapshot): void {
    this.entities.clear();
    this.byRef.clear();
    this.epoch = snapshot.epoch;
    this.sequence = snapshot.sequence;
    for (const [list, kind] of meshLists) {
      for (const entity of snapshot.mesh[list]) {
        this.put(kind, `${kind} ${meshKey(kind, entity)}`, entity);
      }
    }
  }

  /**
   * Applies one delta of the current epoch, which must be the next sequence (the caller checks
   * continuity), and says what the catalog must do for the ref it touches.
   */
  /** Counts the delta of a kind the catalog does not map: the sequence moves, nothing else. */
  skip(sequence: number): void {
    this.sequence = sequence;
  }

  apply(change: MeshChange): CatalogChange {
    const id = `${change.kind} ${change.key}`;
    if (change.op === 'deleted') {
      const held = this.entities.get(id);
      if (held) {
        this.entities.delete(id);
        const ref = backstageRef(held.kind, held.entity, this.ctx.cluster);
        const ids = this.byRef.get(ref);
        ids?.delete(id);
        if (ids?.size === 0) {
          this.byRef.delete(ref);
        }
      }
    } else {
      this.put(change.kind, id, change.entity);
    }
    this.sequence = change.sequence;
    const ref = backstageRef(change.kind, change.entity, this.ctx.cluster);
    const entity = this.entityFor(ref);
    return entity ? { upserted: [entity], removed: [] } : { upserted: [], removed: [ref] };
  }

  /** Every Backstage entity, one per ref, in the order the published plugin lists them. */
  allEntities(): Entity[] {
    const winners = new Map<string, Held>();
    for (const [ref, ids] of this.byRef) {
      winners.set(ref, this.winner(ids));
    }
    const out: Entity[] = [];
    for (const kind of listingOrder) {
      for (const held of this.entities.values()) {
        if (held.kind === kind && winners.get(backstageRef(kind, held.entity, this.ctx.cluster)) === held) {
          out.push(backstageEntity(kind, held.entity, this.ctx));
        }
      }
    }
    return out;
  }

  /** The entity the catalog should hold under ref, or undefined when none maps to it. */
  entityFor(ref: string): Entity | undefined {
    const ids = this.byRef.get(ref);
    if (!ids || ids.size === 0) {
      return undefined;
    }
    const held = this.winner(ids);
    return backstageEntity(held.kind, held.entity, this.ctx);
  }

  private put(kind: MeshKind, id: string, entity: MeshEntity): void {
    this.entities.set(id, { kind, entity });
    const ref = backstageRef(kind, entity, this.ctx.cluster);
    let ids = this.byRef.get(ref);
    if (!ids) {
      ids = new Set();
      this.byRef.set(ref, ids);
    }
    ids.add(id);
  }

  /** By precedence; among entities of one kind, the last in the mesh's order, as the catalog keeps it. */
  private winner(ids: Set<string>): Held {
    let best: Held | undefined;
    for (const id of ids) {
      const held = this.entities.get(id)!;
      if (!best || rank(held) < rank(best) || (rank(held) === rank(best) && listedAfter(held, best))) {
        best = held;
      }
    }
    return best!;
  }
}

function rank(held: Held): number {
  return precedence.indexOf(held.kind);
}

/** Whether a comes after b in the mesh's lists (namespace, name, group, kind; the same ref). */
function listedAfter(a: Held, b: Held): boolean {
  const ga = a.entity as { group?: string; kind?: string };
  const gb = b.entity as { group?: string; kind?: string };
  const [groupA, groupB] = [ga.group ?? '', gb.group ?? ''];
  return groupA !== groupB ? groupA > groupB : (ga.kind ?? '') > (gb.kind ?? '');
}

/** The key the protocol gives an entity: group/Kind/namespace/name. */
export function meshKey(kind: MeshKind, entity: MeshEntity): string {
  switch (kind) {
    case 'broker':
      return `eventing.knative.dev/Broker/${entity.namespace}/${entity.name}`;
    case 'eventtype':
      return `eventing.knative.dev/EventType/${entity.namespace}/${entity.name}`;
    default: {
      const typed = entity as { group: string; kind: string };
      return `${typed.group}/${typed.kind}/${entity.namespace}/${entity.name}`;
    }
  }
}
