// The follower's decisions against a scripted watch server: what the real broadcaster does not
// produce on demand (a new epoch mid-stream, a malformed event, a refused token, position
// events, a failing catalog write). A recording connection stands in for the catalog.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { MeshFollower } from '../src/follower';
import { DEFAULT_PUSH, DEFAULT_SCHEDULE, ProviderConfig } from '../src/config';
import { tempDir, waitFor } from './harness';

const emptyMesh = { brokers: [], eventTypes: [], sources: [], subscribables: [] };
const broker = (name: string, labels: Record<string, string> | null = null) => ({
  namespace: 'shop', name, uid: '', labels, annotations: null, providedEventTypes: [],
});
const snapshot = (epoch: string, id: number, brokers: object[] = [], cluster?: string) =>
  `event: snapshot\nid: ${id}\ndata: ${JSON.stringify({ epoch, sequence: id, cluster, mesh: { ...emptyMesh, brokers } })}\n\n`;
const delta = (epoch: string, id: number, entity: object, op = 'added', cluster?: string) =>
  `event: delta\nid: ${id}\ndata: ${JSON.stringify({
    specversion: '1.0', id: `${epoch}-${id}`, type: `dev.knative.eventmesh.broker.${op}`, meshcluster: cluster,
    data: { key: `eventing.knative.dev/Broker/shop/${(entity as any).name}`, kind: 'broker', op, epoch, sequence: id, entity },
  })}\n\n`;

interface Seen {
  lastEventId: string | undefined;
  url: string;
  authorization: string | undefined;
}

/** Answers the n-th watch request with script[n] (status and body), holding the last one open. */
async function scriptedServer(script: Array<{ status?: number; headers?: Record<string, string>; body: string; end?: boolean }>) {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const step = script[Math.min(seen.length, script.length - 1)];
    seen.push({ lastEventId: req.headers['last-event-id'] as string | undefined, url: req.url!, authorization: req.headers.authorization });
    res.writeHead(step.status ?? 200, { 'Content-Type': step.status && step.status !== 200 ? 'application/json' : 'text/event-stream', ...step.headers });
    res.write(step.body);
    if (step.end !== false) res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return { url, seen, stop: () => { server.closeAllConnections(); return new Promise((r) => server.close(r)); } };
}

function recorder(failFirstDelta = false) {
  const mutations: any[] = [];
  let failed = false;
  return {
    mutations,
    connection: {
      applyMutation: async (m: any) => {
        if (failFirstDelta && m.type === 'delta' && !failed) {
          failed = true;
          throw new Error('database is locked');
        }
        mutations.push(m);
      },
      refresh: async () => {},
    },
  };
}

const quiet: any = { child: () => quiet, info() {}, debug() {}, warn() {}, error() {} };
const counter = { add() {}, record() {} };
const metrics = { connections: counter, resyncs: counter, mutations: counter, mutationDuration: counter, received: counter };

function follow(
  baseUrl: string,
  connection: any,
  token?: ProviderConfig['token'],
  idleTimeoutMs = 45_000,
  overrides: { cluster?: string; naming?: ProviderConfig['naming']; fullMutationIntervalMs?: number } = {},
) {
  const config: ProviderConfig = {
    id: 'dev',
    baseUrl,
    token,
    schedule: DEFAULT_SCHEDULE,
    push: {
      minReconnectDelayMs: 10,
      maxReconnectDelayMs: 50,
      idleTimeoutMs,
      fullMutationIntervalMs: overrides.fullMutationIntervalMs ?? DEFAULT_PUSH.fullMutationIntervalMs,
    },
    cluster: overrides.cluster,
    naming: overrides.naming ?? 'published',
  };
  const follower = new MeshFollower({ config, locationKey: 'knative-event-mesh-provider-dev', connection, logger: quiet, metrics: metrics as any });
  const abort = new AbortController();
  const done = follower.run(abort.signal);
  return { stop: async () => { abort.abort(); await done; } };
}

test('a delta of another epoch mid-stream: a fresh snapshot', async () => {
  const server = await scriptedServer([
    { body: snapshot('e1', 2, [broker('a')]) + delta('e2', 1, broker('b')) },
    { body: snapshot('e2', 1, [broker('b')]), end: false },
  ]);
  const rec = recorder();
  const f = follow(server.url, rec.connection);
  await waitFor('two full mutations', async () => (rec.mutations.length >= 2 ? true : undefined), 5000, 20);
  await f.stop();
  await server.stop();
  assert.deepEqual(rec.mutations.map((m) => m.type), ['full', 'full']);
  assert.deepEqual(rec.mutations[1].entities.map((e: any) => e.entity.metadata.name), ['b']);
  assert.equal(server.seen[1].lastEventId, undefined, 'no resume into another epoch');
});

test('a malformed event: a fresh snapshot, never a resume', async () => {
  const server = await scriptedServer([
    { body: snapshot('e1', 2) + 'event: delta\nid: 3\ndata: {"specversion":"1.0","data":{"key":"nonsense"}}\n\n' },
    { body: snapshot('e1', 3), end: false },
  ]);
  const rec = recorder();
  const f = follow(server.url, rec.connection);
  await waitFor('the second snapshot', async () => (rec.mutations.length >= 2 ? true : undefined), 5000, 20);
  await f.stop();
  await server.stop();
  assert.equal(server.seen[1].lastEventId, undefined);
});

test('position events move the resume point; a clean end resumes at once with ?epoch=', async () => {
  const server = await scriptedServer([
    { body: snapshot('e1', 2) + 'event: position\nid: 5\ndata: {"epoch":"e1","sequence":5}\n\n' },
    { body: delta('e1', 6, broker('a')), end: false },
  ]);
  const rec = recorder();
  const f = follow(server.url, rec.connection);
  await waitFor('the delta', async () => (rec.mutations.length >= 2 ? true : undefined), 5000, 20);
  await f.stop();
  await server.stop();
  assert.equal(server.seen[1].lastEventId, 'e1-5');
  assert.equal(server.seen[1].url, '/v1/watch?epoch=e1');
  assert.equal(rec.mutations[1].type, 'delta');
  assert.equal(rec.mutations[1].added[0].entity.metadata.name, 'a');
  assert.equal(rec.mutations[1].added[0].locationKey, 'knative-event-mesh-provider-dev');
});

test('a failed catalog write: the next stream starts from a snapshot', async () => {
  const server = await scriptedServer([
    { body: snapshot('e1', 2) + delta('e1', 3, broker('a')), end: false },
    { body: snapshot('e1', 3, [broker('a')]), end: false },
  ]);
  const rec = recorder(true);
  const f = follow(server.url, rec.connection);
  await waitFor('the resync', async () => (rec.mutations.length >= 2 ? true : undefined), 5000, 20);
  await f.stop();
  await server.stop();
  assert.deepEqual(rec.mutations.map((m) => m.type), ['full', 'full']);
  assert.equal(server.seen[1].lastEventId, undefined);
});

test('a delete is a removal of the ref', async () => {
  const server = await scriptedServer([{ body: snapshot('e1', 1, [broker('a')]) + delta('e1', 2, broker('a'), 'deleted'), end: false }]);
  const rec = recorder();
  const f = follow(server.url, rec.connection);
  await waitFor('the delete', async () => (rec.mutations.length >= 2 ? true : undefined), 5000, 20);
  await f.stop();
  await server.stop();
  assert.deepEqual(rec.mutations[1], { type: 'delta', added: [], removed: [{ entityRef: 'component:shop/a', locationKey: 'knative-event-mesh-provider-dev' }] });
});

test('the token goes as a bearer token; a token file is read at every connection; 401 drops the resume point', async () => {
  const file = path.join(tempDir('token-'), 'token');
  fs.writeFileSync(file, 'first\n');
  const server = await scriptedServer([
    { body: snapshot('e1', 2), end: true },
    { status: 401, body: '{"error":"no"}' },
    { body: snapshot('e1', 2), end: false },
  ]);
  const rec = recorder();
  const f = follow(server.url, rec.connection, { file });
  await waitFor('the first request', async () => (server.seen.length >= 1 ? true : undefined), 5000, 5);
  fs.writeFileSync(file, 'second\n');
  await waitFor('three requests', async () => (server.seen.length >= 3 ? true : undefined), 5000, 20);
  await f.stop();
  await server.stop();
  assert.equal(server.seen[0].authorization, 'Bearer first');
  assert.equal(server.seen[2].authorization, 'Bearer second');
  assert.equal(server.seen[1].lastEventId, 'e1-2', 'the clean end resumed');
  assert.equal(server.seen[2].lastEventId, undefined, 'after 401, a fresh stream');
});

test('503 with Retry-After is waited out', async () => {
  const server = await scriptedServer([
    { status: 503, headers: { 'Retry-After': '1' }, body: '{"error":"loading"}' },
    { body: snapshot('e1', 0), end: false },
  ]);
  const rec = recorder();
  const started = Date.now();
  const f = follow(server.url, rec.connection);
  await waitFor('the snapshot', async () => (rec.mutations.length >= 1 ? true : undefined), 5000, 20);
  await f.stop();
  await server.stop();
  assert.ok(Date.now() - started >= 1000, 'waited the second the server asked for');
});

test('a silent stream (no heartbeat) is dropped and resumed', async () => {
  const server = await scriptedServer([
    { body: snapshot('e1', 2), end: false },
    { body: delta('e1', 3, broker('a')), end: false },
  ]);
  const rec = recorder();
  const f = follow(server.url, rec.connection, undefined, 300);
  await waitFor('the resumed delta', async () => (rec.mutations.length >= 2 ? true : undefined), 5000, 20);
  await f.stop();
  await server.stop();
  assert.equal(server.seen[1].lastEventId, 'e1-2');
  assert.equal(rec.mutations[1].type, 'delta');
});

test('a stream that breaks right after every snapshot backs off instead of looping', async () => {
  const server = await scriptedServer([{ body: snapshot('e1', 2) + delta('e1', 9, broker('a')) }]);
  const rec = recorder();
  const f = follow(server.url, rec.connection);
  await new Promise((r) => setTimeout(r, 1000));
  await f.stop();
  await server.stop();
  // Without backoff this is hundreds; with 10 ms doubling to 50 ms, a few dozen at most.
  assert.ok(server.seen.length >= 3 && server.seen.length <= 40, `${server.seen.length} connections in a second`);
  assert.ok(server.seen.every((s) => s.lastEventId === undefined), 'every one a fresh snapshot');
});

test('a 410 to a fresh request is retried with backoff, not at once', async () => {
  const server = await scriptedServer([{ status: 410, body: '{"error":"gone","reason":"expired"}' }]);
  const rec = recorder();
  const f = follow(server.url, rec.connection);
  await new Promise((r) => setTimeout(r, 1000));
  await f.stop();
  await server.stop();
  assert.ok(server.seen.length <= 40, `${server.seen.length} requests in a second`);
  assert.equal(rec.mutations.length, 0);
});

test('naming: cluster names every entity and ref for the cluster the broadcaster serves', async () => {
  const orders = { ...broker('orders'), providedEventTypes: ['shop/order-created'] };
  const server = await scriptedServer([
    { body: snapshot('e1', 1, [orders], 'east') + delta('e1', 2, broker('refunds'), 'added', 'east') + delta('e1', 3, broker('refunds'), 'deleted', 'east'), end: false },
  ]);
  const rec = recorder();
  const f = follow(server.url, rec.connection, undefined, 45_000, { cluster: 'east', naming: 'cluster' });
  await waitFor('the snapshot and two deltas', async () => (rec.mutations.length >= 3 ? true : undefined), 5000, 20);
  await f.stop();
  await server.stop();
  const [full, added, removed] = rec.mutations;
  const entity = full.entities[0].entity;
  assert.equal(entity.metadata.name, 'orders.east');
  assert.equal(entity.metadata.namespace, 'shop');
  assert.equal(entity.metadata.title, 'orders (east)');
  assert.equal(entity.metadata.annotations['eventmesh.knative.dev/cluster'], 'east');
  assert.deepEqual(entity.spec.providesApis, ['api:shop/order-created.east']);
  assert.equal(added.added[0].entity.metadata.name, 'refunds.east');
  assert.deepEqual(removed.removed, [{ entityRef: 'component:shop/refunds.east', locationKey: 'knative-event-mesh-provider-dev' }]);
});

test('a broadcaster naming no cluster is taken to be the configured one', async () => {
  const server = await scriptedServer([{ body: snapshot('e1', 1, [broker('orders')]), end: false }]);
  const rec = recorder();
  const f = follow(server.url, rec.connection, undefined, 45_000, { cluster: 'east', naming: 'cluster' });
  await waitFor('the snapshot', async () => (rec.mutations.length >= 1 ? true : undefined), 5000, 20);
  await f.stop();
  await server.stop();
  assert.equal(rec.mutations[0].entities[0].entity.metadata.name, 'orders.east');
});

test('a broadcaster of another cluster than the configured one: nothing written, asked again', async (t) => {
  for (const naming of ['cluster', 'published'] as const) {
    await t.test(naming, async () => {
      const server = await scriptedServer([{ body: snapshot('e1', 1, [broker('orders')], 'west'), end: false }]);
      const rec = recorder();
      const f = follow(server.url, rec.connection, undefined, 45_000, { cluster: 'east', naming });
      await waitFor('a second request', async () => (server.seen.length >= 2 ? true : undefined), 5000, 20);
      await f.stop();
      await server.stop();
      assert.equal(rec.mutations.length, 0);
      assert.ok(server.seen.every((s) => s.lastEventId === undefined), 'every one a fresh snapshot');
    });
  }
});

test('a delta of another cluster than its stream: a fresh snapshot', async () => {
  const server = await scriptedServer([
    { body: snapshot('e1', 1, [], 'east') + delta('e1', 2, broker('a'), 'added', 'west') },
    { body: snapshot('e1', 2, [], 'east'), end: false },
  ]);
  const rec = recorder();
  const f = follow(server.url, rec.connection, undefined, 45_000, { cluster: 'east', naming: 'cluster' });
  await waitFor('two snapshots', async () => (rec.mutations.length >= 2 ? true : undefined), 5000, 20);
  await f.stop();
  await server.stop();
  assert.deepEqual(rec.mutations.map((m) => m.type), ['full', 'full']);
  assert.equal(server.seen[1].lastEventId, undefined);
});

test('every push.fullMutationInterval the replica is written again, on the same stream', async () => {
  const server = await scriptedServer([{ body: snapshot('e1', 1, [broker('a')]) + delta('e1', 2, broker('b')), end: false }]);
  const rec = recorder();
  const f = follow(server.url, rec.connection, undefined, 45_000, { fullMutationIntervalMs: 100 });
  await waitFor('two periodic full mutations', async () => (rec.mutations.length >= 4 ? true : undefined), 5000, 20);
  await f.stop();
  await server.stop();
  assert.deepEqual(rec.mutations.slice(0, 4).map((m) => m.type), ['full', 'delta', 'full', 'full']);
  for (const m of rec.mutations.slice(2)) {
    assert.equal(m.type, 'full');
    assert.deepEqual(m.entities.map((e: any) => e.entity.metadata.name), ['a', 'b'], 'the replica as it stands, delta included');
  }
  assert.equal(server.seen.length, 1, 'no new stream, no snapshot');
  const after = rec.mutations.length;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(rec.mutations.length, after, 'nothing is written once the follower has stopped');
});
