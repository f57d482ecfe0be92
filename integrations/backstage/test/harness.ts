// What the node tests share: the real broadcaster on a manifests directory, a proxy in front of
// it that can cut streams and answer 410, and the real Backstage catalog backend in-process
// (startTestBackend) on SQLite or PostgreSQL, with this module or the published plugin.
//
// Environment (set by the Go test in test/backstagepush): BROADCASTER_BIN, the broadcaster
// binary; EXAMPLES_MESH, the examples/mesh folder; POSTGRES_URL (optional).

import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { createBackendModule, coreServices, BackendFeature } from '@backstage/backend-plugin-api';
import { Entity } from '@backstage/catalog-model';
import { catalogProcessingExtensionPoint, catalogServiceRef } from '@backstage/plugin-catalog-node';
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import { schedulerServiceFactory } from '@backstage/backend-defaults/scheduler';
import { databaseServiceFactory } from '@backstage/backend-defaults/database';

export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests through go test ./test/backstagepush (see its doc.go)`);
  }
  return value;
}

const tempDirs: string[] = [];
// Removed when the test process ends (the runner's --test-force-exit still runs exit handlers).
process.on('exit', () => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** A new temporary folder, removed when the process exits. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** A copy of examples/mesh in a temporary folder, so a test can edit it. */
export function copyExampleMesh(): string {
  const dir = tempDir('mesh-');
  fs.cpSync(requireEnv('EXAMPLES_MESH'), dir, { recursive: true });
  return dir;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** The real broadcaster binary on a manifests directory, on a fixed port so restarts keep it. */
export class Broadcaster {
  private child: ChildProcess | undefined;
  log = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
    /** Flags beyond --manifests and --listen (e.g. --cluster-name), kept across restarts. */
    readonly args: string[],
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(dir: string, extraArgs: string[] = []): Promise<Broadcaster> {
    const b = new Broadcaster(dir, await freePort(), extraArgs);
    await b.launch();
    return b;
  }

  async launch(): Promise<void> {
    const child = spawn(requireEnv('BROADCASTER_BIN'), ['--manifests', this.dir, '--listen', `127.0.0.1:${this.port}`, ...this.args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    child.stderr!.on('data', (chunk) => {
      this.log += chunk;
    });
    await waitFor('the broadcaster to serve its mesh', async () => {
      if (child.exitCode !== null) throw new Error(`broadcaster exited: ${this.log}`);
      const res = await fetch(`${this.url}/readyz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    }, 30_000);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  async mesh(): Promise<{ epoch: string; sequence: number; mesh: any }> {
    const res = await fetch(`${this.url}/v1/mesh`);
    if (res.status !== 200) throw new Error(`GET /v1/mesh: ${res.status}`);
    return (await res.json()) as any;
  }
}

export interface ProxiedRequest {
  path: string;
  lastEventId: string | undefined;
  authorization: string | undefined;
  status: number;
  /** The first SSE event name of a watch stream. */
  firstEvent: string | undefined;
  bytes: number;
}

/**
 * An HTTP proxy in front of the broadcaster: it records every request, can cut every open
 * stream, and can answer the next watch requests 410 itself.
 */
export class BroadcasterProxy {
  readonly requests: ProxiedRequest[] = [];
  /** How many coming /v1/watch requests to answer 410 Gone. */
  goneCount = 0;
  /** How many coming delta events to drop (a loss the follower must notice), and those dropped. */
  dropDeltas = 0;
  readonly dropped: string[] = [];
  private hold: Promise<void> | undefined;
  private readonly open = new Set<http.ServerResponse>();
  private server!: http.Server;
  port = 0;

  constructor(public upstream: string) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Destroys every stream in flight, as a network cut would. */
  cutAll(): number {
    const n = this.open.size;
    for (const res of this.open) res.destroy();
    this.open.clear();
    return n;
  }

  /** Streams being forwarded right now. */
  openStreams(): number {
    return this.open.size;
  }

  watchRequests(): ProxiedRequest[] {
    return this.requests.filter((r) => r.path.startsWith('/v1/watch'));
  }

  async stop(): Promise<void> {
    this.cutAll();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const record: ProxiedRequest = {
      path: req.url ?? '',
      lastEventId: req.headers['last-event-id'] as string | undefined,
      authorization: req.headers.authorization,
      status: 0,
      firstEvent: undefined,
      bytes: 0,
    };
    this.requests.push(record);
    const watch = record.path.startsWith('/v1/watch');
    const proceed = async () => {
      if (watch && this.hold) await this.hold;
      if (watch && this.goneCount > 0) {
        this.goneCount--;
        record.status = 410;
        res.writeHead(410, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: 'the test proxy says: gone', reason: 'expired' }));
        return;
      }
      this.forward(req, res, record, watch);
    };
    void proceed();
  }

  /** Holds every coming watch request until release() (with the answer chosen by then). */
  holdWatches(): () => void {
    let release!: () => void;
    this.hold = new Promise<void>((resolve) => (release = resolve));
    return () => {
      this.hold = undefined;
      release();
    };
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, record: ProxiedRequest, watch: boolean): void {
    const target = new URL(req.url ?? '/', this.upstream);
    const upstream = http.request(target, { method: req.method, headers: req.headers }, (up) => {
      record.status = up.statusCode ?? 0;
      res.writeHead(up.statusCode ?? 502, up.headers);
      this.open.add(res);
      let pending = '';
      const text = new StringDecoder('utf8');
      up.on('data', (chunk: Buffer) => {
        record.bytes += chunk.length;
        if (!watch) {
          res.write(chunk);
          return;
        }
        // Whole events only, so one can be recorded or dropped.
        pending += text.write(chunk);
        let end: number;
        while ((end = pending.indexOf('\n\n')) >= 0) {
          const block = pending.slice(0, end + 2);
          pending = pending.slice(end + 2);
          const name = /^event: (\w+)$/m.exec(block)?.[1];
          if (name && record.firstEvent === undefined) record.firstEvent = name;
          if (name === 'delta' && this.dropDeltas > 0) {
            this.dropDeltas--;
            this.dropped.push(block);
            continue;
          }
          res.write(block);
        }
      });
      up.on('end', () => {
        this.open.delete(res);
        res.end();
      });
      up.on('error', () => res.destroy());
      res.on('close', () => {
        this.open.delete(res);
        up.destroy();
      });
    });
    upstream.on('error', () => {
      record.status = 502;
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  }
}

/** Polls fn until it returns something other than undefined, or fails after timeoutMs with the last error. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).stack ?? last}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Which database the catalog runs on: a fresh one per call. */
export type DatabaseKind = 'sqlite' | 'postgres';

export function databaseConfig(kind: DatabaseKind, name: string): any {
  if (kind === 'sqlite') {
    return {
      client: 'better-sqlite3',
      connection: { directory: tempDir(`catalog-${name}-`) },
    };
  }
  // A prefix of its own per test: every plugin's database is created anew under it.
  return {
    client: 'pg',
    connection: requireEnv('POSTGRES_URL'),
    prefix: `emb_${name.replace(/\W/g, '_')}_${process.pid}_${Date.now() % 1e6}_`,
  };
}

/** Components standing for the services that consume events: what `consumedBy` names. */
export const consumerComponents: Array<{ namespace: string; name: string; kubernetesId: string }> = [
  { namespace: 'shop', name: 'audit', kubernetesId: 'audit-log' },
  { namespace: 'shop', name: 'shipping', kubernetesId: 'shipping-service' },
  { namespace: 'shop', name: 'notifications', kubernetesId: 'notification-service' },
  { namespace: 'shop', name: 'billing', kubernetesId: 'billing-service' },
  { namespace: 'payments', name: 'billing', kubernetesId: 'billing-service' },
  { namespace: 'payments', name: 'audit', kubernetesId: 'audit-log' },
  { namespace: 'ops', name: 'pager', kubernetesId: 'pager-duty-bridge' },
];

const consumersModule = createBackendModule({
  pluginId: 'catalog',
  moduleId: 'test-consumers',
  register(env) {
    env.registerInit({
      deps: { catalog: catalogProcessingExtensionPoint },
      async init({ catalog }) {
        catalog.addEntityProvider({
          getProviderName: () => 'test-consumers',
          connect: async (connection) => {
            await connection.applyMutation({
              type: 'full',
              entities: consumerComponents.map((c) => ({
                locationKey: 'test-consumers',
                entity: {
                  apiVersion: 'backstage.io/v1alpha1',
                  kind: 'Component',
                  metadata: {
                    name: c.name,
                    namespace: c.namespace,
                    annotations: {
                      'backstage.io/kubernetes-id': c.kubernetesId,
                      'backstage.io/managed-by-location': 'url:http://consumers.example',
                      'backstage.io/managed-by-origin-location': 'url:http://consumers.example',
                    },
                  },
                  spec: { type: 'service', lifecycle: 'production', owner: 'team' },
                },
              })),
            });
          },
        });
      },
    });
  },
});

/** The published plugin's provider and processor, wired as its own module does, for comparisons. */
export function publishedPluginModule(id: string, baseUrl: string, pollSeconds: number): BackendFeature {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const published = require('@knative-extensions/plugin-knative-event-mesh-backend');
  return createBackendModule({
    pluginId: 'catalog',
    moduleId: 'published-knative-event-mesh',
    register(env) {
      env.registerInit({
        deps: {
          catalog: catalogProcessingExtensionPoint,
          catalogApi: catalogServiceRef,
          auth: coreServices.auth,
          logger: coreServices.logger,
          scheduler: coreServices.scheduler,
        },
        async init({ catalog, catalogApi, auth, logger, scheduler }) {
          const runner = scheduler.createScheduledTaskRunner({
            frequency: { seconds: pollSeconds },
            timeout: { seconds: 60 },
          });
          catalog.addEntityProvider(new published.KnativeEventMeshProvider({ id, baseUrl, token: '' }, logger, runner));
          const client = {
            queryEntities: async (request: any) =>
              catalogApi.queryEntities(request, { credentials: await auth.getOwnServiceCredentials() }),
          };
          catalog.addProcessor(new published.KnativeEventMeshProcessor(client, logger));
        },
      });
    },
  });
}

export interface CatalogOptions {
  plugin: 'push' | 'published';
  providerId?: string;
  baseUrl: string;
  database: any;
  processingIntervalSeconds?: number;
  /** Extra provider config (push settings, schedule). */
  providerConfig?: any;
  /** Instead of one provider (providerId, baseUrl, providerConfig): every provider's config by id. */
  providers?: Record<string, any>;
  consumers?: boolean;
  pollSeconds?: number;
  /** catalog.stitchingStrategy.pollingInterval (the catalog's default is 1 s). */
  stitchingPollMs?: number;
}

export interface Catalog {
  url: string;
  stop(): Promise<void>;
  /** Every entity the catalog REST API serves. */
  entities(): Promise<Entity[]>;
  entity(ref: string): Promise<Entity | undefined>;
}

export async function startCatalog(options: CatalogOptions): Promise<Catalog> {
  const id = options.providerId ?? 'test';
  const features: any[] = [
    import('@backstage/plugin-catalog-backend'),
    schedulerServiceFactory,
    databaseServiceFactory,
    mockServices.rootConfig.factory({
      data: {
        backend: { database: options.database },
        catalog: {
          processingInterval: { seconds: options.processingIntervalSeconds ?? 3 },
          ...(options.stitchingPollMs ? { stitchingStrategy: { pollingInterval: { milliseconds: options.stitchingPollMs } } } : {}),
          providers: {
            knativeEventMesh: options.providers ?? { [id]: { baseUrl: options.baseUrl, ...(options.providerConfig ?? {}) } },
          },
        },
      },
    }),
  ];
  if (options.consumers !== false) features.push(consumersModule);
  if (options.plugin === 'push') {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    features.push(require('../src/index').default);
  } else {
    features.push(publishedPluginModule(id, options.baseUrl, options.pollSeconds ?? 2));
  }
  const backend = await startTestBackend({ features });
  const url = `http://127.0.0.1:${backend.server.port()}/api/catalog`;
  return {
    url,
    stop: () => backend.stop(),
    entities: async () => {
      const res = await fetch(`${url}/entities`);
      if (res.status !== 200) throw new Error(`GET /entities: ${res.status} ${await res.text()}`);
      return (await res.json()) as Entity[];
    },
    entity: async (ref: string) => {
      const [kind, rest] = ref.split(':');
      const [namespace, name] = rest.split('/');
      const res = await fetch(`${url}/entities/by-name/${kind}/${namespace}/${name}`);
      if (res.status === 404) return undefined;
      if (res.status !== 200) throw new Error(`GET ${ref}: ${res.status}`);
      return (await res.json()) as Entity;
    },
  };
}

/** The refs of the entities a provider wrote: they carry its base URL. */
export function meshEntities(entities: Entity[], baseUrl: string): Entity[] {
  return entities.filter((e) => e.metadata.annotations?.['backstage.io/managed-by-location'] === `url:${baseUrl}`);
}

export function refOf(e: Entity): string {
  return `${e.kind.toLowerCase()}:${e.metadata.namespace ?? 'default'}/${e.metadata.name}`;
}

/**
 * An entity as a golden file holds it: without what differs between runs (uid, etag, the
 * broadcaster's URL), relations sorted.
 */
export function normalize(entity: Entity, baseUrl: string): unknown {
  const copy = JSON.parse(JSON.stringify(entity).split(baseUrl).join('${BASE_URL}'));
  delete copy.metadata.uid;
  delete copy.metadata.etag;
  delete copy.metadata.generation;
  copy.relations = (copy.relations ?? [])
    .map((r: any) => ({ type: r.type, targetRef: r.targetRef }))
    .sort((a: any, b: any) => (a.type + a.targetRef < b.type + b.targetRef ? -1 : a.type + a.targetRef > b.type + b.targetRef ? 1 : 0));
  return copy;
}

/** Every entity of the catalog, normalized and sorted by ref: what a golden file holds. */
export function golden(entities: Entity[], baseUrl: string): Array<{ ref: string; entity: unknown }> {
  return entities
    .map((e) => ({ ref: refOf(e), entity: normalize(e, baseUrl) }))
    .sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
}

/** SQLite always; PostgreSQL too when POSTGRES_URL names a server. */
export function databaseKinds(): DatabaseKind[] {
  const kinds: DatabaseKind[] = process.env.POSTGRES_URL ? ['sqlite', 'postgres'] : ['sqlite'];
  // TEST_DATABASES narrows them, e.g. to postgres on a Node whose better-sqlite3 is not built.
  const only = process.env.TEST_DATABASES;
  return only ? kinds.filter((kind) => only.split(',').includes(kind)) : kinds;
}

/** Drops the PostgreSQL databases a test's catalog created (its prefix); nothing for SQLite. */
export async function dropDatabases(database: any): Promise<void> {
  if (database.client !== 'pg') return;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { Client } = require('pg');
  const client = new Client({ connectionString: database.connection });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${database.prefix}%`]);
    for (const row of rows) {
      await client.query(`DROP DATABASE IF EXISTS "${row.datname}" WITH (FORCE)`);
    }
  } finally {
    await client.end();
  }
}

/**
 * The mesh entities the published plugin builds from a mesh (its own buildEntities, run here as
 * an oracle only), one per ref as the catalog keeps them on its first ingest: the last wins.
 */
export function publishedEntities(mesh: unknown, id: string, baseUrl: string): Entity[] {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const published = require('@knative-extensions/plugin-knative-event-mesh-backend');
  const quiet: any = { child: () => quiet, info() {}, debug() {}, warn() {}, error() {} };
  const provider = new published.KnativeEventMeshProvider({ id, baseUrl, token: '' }, quiet, { run: async () => {} });
  const byRef = new Map<string, Entity>();
  for (const entity of provider.buildEntities(JSON.parse(JSON.stringify(mesh)))) {
    byRef.set(refOf(entity), JSON.parse(JSON.stringify(entity)));
  }
  return [...byRef.values()];
}

/** Annotations the catalog adds to what a provider gave it. */
const catalogAnnotations = ['backstage.io/view-url', 'backstage.io/edit-url', 'backstage.io/source-location'];

/** What of a served entity its provider decided: no uid, etag, relations or catalog annotations. */
export function providedPart(entity: Entity): unknown {
  const copy = JSON.parse(JSON.stringify(entity));
  delete copy.relations;
  delete copy.metadata.uid;
  delete copy.metadata.etag;
  delete copy.metadata.generation;
  for (const key of catalogAnnotations) delete copy.metadata.annotations?.[key];
  return sortKeys(copy);
}

function sortKeys(value: any): any {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
  }
  return value;
}

/**
 * undefined when the catalog's mesh entities are exactly what the published plugin builds from
 * the broadcaster's current mesh (no missing, extra or different entity); else what differs.
 */
export async function differenceFromPublished(catalog: Catalog, broadcaster: Broadcaster, baseUrl: string, id = 'test'): Promise<string | undefined> {
  const { mesh } = await broadcaster.mesh();
  const want = new Map(publishedEntities(mesh, id, baseUrl).map((e) => [refOf(e), JSON.stringify(providedPart(e))]));
  const got = new Map<string, string>();
  const problems: string[] = [];
  for (const e of meshEntities(await catalog.entities(), baseUrl)) {
    if (got.has(refOf(e))) problems.push(`duplicate ${refOf(e)}`);
    got.set(refOf(e), JSON.stringify(providedPart(e)));
  }
  for (const [ref, json] of want) {
    if (!got.has(ref)) problems.push(`missing ${ref}`);
    else if (got.get(ref) !== json) problems.push(`differs ${ref}: got ${got.get(ref)}, want ${json}`);
  }
  for (const ref of got.keys()) if (!want.has(ref)) problems.push(`extra ${ref}`);
  return problems.length ? problems.join('\n') : undefined;
}

/** Every served entity by ref: its uid and its normalized JSON. */
export async function catalogState(catalog: Catalog, baseUrl: string): Promise<Map<string, { uid: string; json: string }>> {
  const state = new Map<string, { uid: string; json: string }>();
  for (const e of await catalog.entities()) {
    state.set(refOf(e), { uid: e.metadata.uid!, json: JSON.stringify(normalize(e, baseUrl)) });
  }
  return state;
}

/** The refs added, removed or changed between two states, sorted. */
export function changedRefs(before: Map<string, { json: string }>, after: Map<string, { json: string }>): string[] {
  const refs = new Set<string>();
  for (const [ref, b] of before) if (after.get(ref)?.json !== b.json) refs.add(ref);
  for (const ref of after.keys()) if (!before.has(ref)) refs.add(ref);
  return [...refs].sort();
}
