// The pure parts, table by table: the SSE reader, the wire checks, the configuration and the
// in-memory mesh. No catalog, no broadcaster.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigReader } from '@backstage/config';
import { readServerSentEvents, ServerSentEvent } from '../src/sse';
import { parseDelta, parseSnapshot } from '../src/mesh';
import { readProviderConfigs } from '../src/config';
import { MeshReplica } from '../src/replica';
import { backstageEntity, backstageRef, entityName } from '../src/entities';
import { createHash } from 'node:crypto';
import { eventId } from '../src/watch';
import { tempDir } from './harness';

async function collect(chunks: string[]): Promise<ServerSentEvent[]> {
  async function* body() {
    for (const c of chunks) yield new TextEncoder().encode(c);
  }
  const out: ServerSentEvent[] = [];
  for await (const e of readServerSentEvents(body())) out.push(e);
  return out;
}

test('SSE: events as the standard reads them', async (t) => {
  const cases: Array<{ name: string; chunks: string[]; want: ServerSentEvent[] }> = [
    { name: 'one event', chunks: ['event: delta\nid: 4\ndata: {"a":1}\n\n'], want: [{ event: 'delta', id: '4', data: '{"a":1}' }] },
    { name: 'CRLF and CR line ends', chunks: ['event: a\r\ndata: x\r\n\r\nevent: b\rdata: y\r\r'], want: [{ event: 'a', id: undefined, data: 'x' }, { event: 'b', id: undefined, data: 'y' }] },
    { name: 'CRLF split across chunks', chunks: ['data: x\r', '\n\r', '\n'], want: [{ event: 'message', id: undefined, data: 'x' }] },
    { name: 'a line split across chunks, multi-byte too', chunks: ['data: é', '\u00e8\n', '\n'], want: [{ event: 'message', id: undefined, data: 'éè' }] },
    { name: 'comments (heartbeats) and unknown fields skipped', chunks: [': heartbeat\n\nretry: 5\nfoo: bar\ndata: z\n\n'], want: [{ event: 'message', id: undefined, data: 'z' }] },
    { name: 'multi-line data joined with LF', chunks: ['data: a\ndata: b\n\n'], want: [{ event: 'message', id: undefined, data: 'a\nb' }] },
    { name: 'the last id carries over', chunks: ['id: 7\ndata: a\n\nevent: cutoff\ndata: {}\n\n'], want: [{ event: 'message', id: '7', data: 'a' }, { event: 'cutoff', id: '7', data: '{}' }] },
    { name: 'an event cut off by the end of the stream is dropped', chunks: ['data: a\n\ndata: b\n'], want: [{ event: 'message', id: undefined, data: 'a' }] },
    { name: 'no space after the colon', chunks: ['data:x\n\n'], want: [{ event: 'message', id: undefined, data: 'x' }] },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => assert.deepEqual(await collect(c.chunks), c.want));
  }
});

const entity = { namespace: 'shop', name: 'orders', uid: '', labels: null, annotations: null, providedEventTypes: [] };
const delta = (data: object) => ({ specversion: '1.0', data });
const goodData = { key: 'eventing.knative.dev/Broker/shop/orders', kind: 'broker', op: 'updated', epoch: 'e1', sequence: 3, entity };

test('watch ids: <epoch>-<sequence>, or a sequence alone from older broadcasters', () => {
  assert.equal(eventId('69db75ab8e958574-43', 'delta'), 43);
  assert.equal(eventId('a-b-7', 'delta'), 7);
  assert.equal(eventId('43', 'delta'), 43);
  assert.equal(eventId('e1-0', 'snapshot'), 0);
  for (const bad of [undefined, '', '-4', 'e1-', 'e1-x', 'x', '4.5', 'e1--1x']) {
    assert.throws(() => eventId(bad, 'delta'), /is not <epoch>-<sequence> or a sequence/, String(bad));
  }
});

test('wire checks: a bad event names the field', async (t) => {
  const cases: Array<{ name: string; value: unknown; error: RegExp }> = [
    { name: 'not an object', value: 'x', error: /^delta: want a CloudEvent object/ },
    { name: 'no data', value: { specversion: '1.0' }, error: /^delta\.data: want an object/ },
    { name: 'bad key', value: delta({ ...goodData, key: 'shop/orders' }), error: /^delta\.data\.key: want group\/Kind\/namespace\/name/ },
    { name: 'no kind', value: delta({ ...goodData, kind: '' }), error: /^delta\.data\.kind: want an entity kind/ },
    { name: 'unknown op', value: delta({ ...goodData, op: 'patched' }), error: /^delta\.data\.op/ },
    { name: 'sequence zero', value: delta({ ...goodData, sequence: 0 }), error: /^delta\.data\.sequence/ },
    { name: 'entity of another name', value: delta({ ...goodData, entity: { ...entity, name: 'other' } }), error: /^delta\.data\.entity: names shop\/other, but the key is/ },
    { name: 'labels not strings', value: delta({ ...goodData, entity: { ...entity, labels: { a: 1 } } }), error: /^delta\.data\.entity\.labels/ },
    { name: 'providedEventTypes not a list', value: delta({ ...goodData, entity: { ...entity, providedEventTypes: 'x' } }), error: /^delta\.data\.entity\.providedEventTypes/ },
  ];
  for (const c of cases) {
    await t.test(c.name, () => assert.throws(() => parseDelta(c.value), { message: c.error }));
  }
  await t.test('a good one', () => assert.equal(parseDelta(delta(goodData)).sequence, 3));
  await t.test('a kind the catalog does not map is skipped, its sequence kept', () =>
    assert.deepEqual(parseDelta(delta({ ...goodData, kind: 'trigger', key: 'eventing.knative.dev/Trigger/shop/t', entity: { whatever: 1 } })), {
      skipped: true, key: 'eventing.knative.dev/Trigger/shop/t', kind: 'trigger', op: 'updated', epoch: 'e1', sequence: 3,
    }));
  await t.test('a snapshot without a list', () =>
    assert.throws(() => parseSnapshot({ epoch: 'e', sequence: 1, mesh: { brokers: [], eventTypes: [], sources: [] } }), { message: /^snapshot\.mesh\.subscribables: want a list/ }),
  );
  await t.test('a snapshot with a bad entity', () =>
    assert.throws(
      () => parseSnapshot({ epoch: 'e', sequence: 1, mesh: { brokers: [{ ...entity, name: '' }], eventTypes: [], sources: [], subscribables: [] } }),
      { message: /^snapshot\.mesh\.brokers\[0\]\.name: want a name/ },
    ),
  );
});

test('configuration: what is read, and errors naming the key', async (t) => {
  const read = (provider: object) => readProviderConfigs(new ConfigReader({ catalog: { providers: { knativeEventMesh: { dev: provider } } } }));
  await t.test('defaults', () => {
    const [c] = read({ baseUrl: 'http://b:8080/' });
    assert.equal(c.id, 'dev');
    assert.equal(c.baseUrl, 'http://b:8080/');
    assert.equal(c.token, undefined);
    assert.deepEqual(c.push, { minReconnectDelayMs: 100, maxReconnectDelayMs: 5000, idleTimeoutMs: 45000, fullMutationIntervalMs: 600000 });
    assert.equal(c.naming, 'published');
    assert.equal(c.cluster, undefined);
    assert.deepEqual(c.schedule.timeout, { minutes: 10 });
  });
  await t.test('none configured', () => assert.deepEqual(readProviderConfigs(new ConfigReader({})), []));
  await t.test('the published plugin config reads unchanged', () => {
    const [c] = read({ baseUrl: 'http://b', token: 't0k', schedule: { frequency: { minutes: 1 }, timeout: { minutes: 1 } } });
    assert.deepEqual(c.token, { value: 't0k' });
    assert.deepEqual(c.schedule.frequency, { minutes: 1 });
  });
  const file = path.join(tempDir('token-'), 'token');
  fs.writeFileSync(file, 'abc\n');
  await t.test('a token file', () => assert.deepEqual(read({ baseUrl: 'http://b', tokenFile: file })[0].token, { file }));
  await t.test('push settings', () =>
    assert.deepEqual(
      read({ baseUrl: 'http://b', push: { minReconnectDelay: { seconds: 1 }, maxReconnectDelay: { seconds: 30 }, idleTimeout: { minutes: 1 }, fullMutationInterval: { minutes: 2 } } })[0].push,
      { minReconnectDelayMs: 1000, maxReconnectDelayMs: 30000, idleTimeoutMs: 60000, fullMutationIntervalMs: 120000 },
    ),
  );
  const errors: Array<{ name: string; provider: object; error: RegExp }> = [
    { name: 'no baseUrl', provider: {}, error: /^catalog\.providers\.knativeEventMesh\.dev\.baseUrl: / },
    { name: 'baseUrl not a URL', provider: { baseUrl: 'broadcaster:8080x' }, error: /knativeEventMesh\.dev\.baseUrl: want an http or https URL/ },
    { name: 'baseUrl relative', provider: { baseUrl: '/v1' }, error: /knativeEventMesh\.dev\.baseUrl: "\/v1" is not a URL/ },
    { name: 'token and tokenFile', provider: { baseUrl: 'http://b', token: 'a', tokenFile: file }, error: /knativeEventMesh\.dev\.tokenFile: set token or tokenFile, not both/ },
    { name: 'empty token', provider: { baseUrl: 'http://b', token: ' ' }, error: /knativeEventMesh\.dev\.token: is empty/ },
    { name: 'token file missing', provider: { baseUrl: 'http://b', tokenFile: '/nonexistent/token' }, error: /knativeEventMesh\.dev\.tokenFile: cannot read \/nonexistent\/token/ },
    { name: 'token not a string', provider: { baseUrl: 'http://b', token: { a: 1 } }, error: /knativeEventMesh\.dev\.token: / },
    { name: 'bad schedule', provider: { baseUrl: 'http://b', schedule: { frequency: 'often' } }, error: /knativeEventMesh\.dev\.schedule: / },
    { name: 'max below min', provider: { baseUrl: 'http://b', push: { minReconnectDelay: { seconds: 2 }, maxReconnectDelay: { seconds: 1 } } }, error: /knativeEventMesh\.dev\.push\.maxReconnectDelay: must not be shorter/ },
    { name: 'idle timeout below the heartbeat', provider: { baseUrl: 'http://b', push: { idleTimeout: { seconds: 5 } } }, error: /knativeEventMesh\.dev\.push\.idleTimeout: must be at least 20 s/ },
    { name: 'bad duration', provider: { baseUrl: 'http://b', push: { minReconnectDelay: { lightyears: 2 } } }, error: /knativeEventMesh\.dev\.push\.minReconnectDelay: / },
    { name: 'full mutations too often', provider: { baseUrl: 'http://b', push: { fullMutationInterval: { milliseconds: 500 } } }, error: /knativeEventMesh\.dev\.push\.fullMutationInterval: must be at least 1 s/ },
    { name: 'naming: cluster without a cluster', provider: { baseUrl: 'http://b', naming: 'cluster' }, error: /^catalog\.providers\.knativeEventMesh\.dev\.cluster: naming: cluster needs the cluster's name/ },
    { name: 'an unknown naming', provider: { baseUrl: 'http://b', naming: 'Cluster' }, error: /knativeEventMesh\.dev\.naming: want published or cluster, got "Cluster"/ },
    { name: 'a cluster that is no cluster name', provider: { baseUrl: 'http://b', cluster: 'east.1' }, error: /knativeEventMesh\.dev\.cluster: want the broadcaster's cluster name .*got "east\.1"/ },
    { name: 'a cluster ending in -', provider: { baseUrl: 'http://b', cluster: 'east-' }, error: /knativeEventMesh\.dev\.cluster: want the broadcaster's cluster name/ },
    { name: 'a cluster too long to name entities by', provider: { baseUrl: 'http://b', cluster: 'c'.repeat(53), naming: 'cluster' }, error: /knativeEventMesh\.dev\.cluster: with naming: cluster, at most 52 characters/ },
  ];
  for (const e of errors) {
    await t.test(e.name, () => assert.throws(() => read(e.provider), { message: e.error }));
  }
  await t.test('a cluster and naming', () => {
    const [c] = read({ baseUrl: 'http://b', cluster: 'east-1', naming: 'cluster' });
    assert.equal(c.cluster, 'east-1');
    assert.equal(c.naming, 'cluster');
    assert.equal(read({ baseUrl: 'http://b', cluster: 'c'.repeat(63) })[0].cluster?.length, 63, 'any cluster name without naming: cluster');
  });
});

test('configuration of a fleet: one provider per cluster, names that cannot collide', async (t) => {
  const read = (providers: object) => readProviderConfigs(new ConfigReader({ catalog: { providers: { knativeEventMesh: providers } } }));
  await t.test('three clusters', () => {
    const configs = read({
      east: { baseUrl: 'http://east', cluster: 'east', naming: 'cluster' },
      west: { baseUrl: 'http://west', cluster: 'west', naming: 'cluster' },
      north: { baseUrl: 'http://north', cluster: 'north', naming: 'cluster' },
    });
    assert.deepEqual(configs.map((c) => [c.id, c.cluster, c.naming]), [['east', 'east', 'cluster'], ['west', 'west', 'cluster'], ['north', 'north', 'cluster']]);
  });
  await t.test('several providers named as the published plugin does (as before)', () => {
    assert.equal(read({ dev: { baseUrl: 'http://a' }, prod: { baseUrl: 'http://b' } }).length, 2);
  });
  const errors: Array<{ name: string; providers: object; error: RegExp }> = [
    {
      name: 'one cluster twice',
      providers: { a: { baseUrl: 'http://a', cluster: 'east', naming: 'cluster' }, b: { baseUrl: 'http://b', cluster: 'east', naming: 'cluster' } },
      error: /^catalog\.providers\.knativeEventMesh\.b\.cluster: "east" is already the cluster of catalog\.providers\.knativeEventMesh\.a\.cluster/,
    },
    {
      name: 'one cluster twice, in other case (refs ignore case)',
      providers: { a: { baseUrl: 'http://a', cluster: 'east' }, b: { baseUrl: 'http://b', cluster: 'East' } },
      error: /knativeEventMesh\.b\.cluster: "East" is already the cluster of catalog\.providers\.knativeEventMesh\.a\.cluster/,
    },
    {
      name: 'mixed naming',
      providers: { a: { baseUrl: 'http://a', cluster: 'east', naming: 'cluster' }, b: { baseUrl: 'http://b' } },
      error: /^catalog\.providers\.knativeEventMesh\.b\.naming: is published, but catalog\.providers\.knativeEventMesh\.a\.naming is cluster/,
    },
  ];
  for (const e of errors) {
    await t.test(e.name, () => assert.throws(() => read(e.providers), { message: e.error }));
  }
});

test('entity names with naming: cluster', async (t) => {
  const long = 'a-very-long-event-type-name-generated-by-a-source-controller-0123456789';
  const cases: Array<{ name: string; object: string; cluster: string | undefined; want: string }> = [
    { name: 'published naming: the name', object: 'orders', cluster: undefined, want: 'orders' },
    { name: 'the cluster after a dot', object: 'orders', cluster: 'east', want: 'orders.east' },
    { name: 'a dotted name keeps its dots', object: 'order.created', cluster: 'east', want: 'order.created.east' },
    { name: 'exactly 63', object: 'o'.repeat(58), cluster: 'east', want: `${'o'.repeat(58)}.east` },
    { name: 'longer: cut, hashed', object: long, cluster: 'east', want: `${long.slice(0, 49)}-${createHash('sha256').update(long).digest('hex').slice(0, 8)}.east` },
    { name: 'a cut ending in - loses it', object: `${'o'.repeat(48)}-${'x'.repeat(20)}`, cluster: 'east', want: `${'o'.repeat(48)}-${createHash('sha256').update(`${'o'.repeat(48)}-${'x'.repeat(20)}`).digest('hex').slice(0, 8)}.east` },
    { name: 'the longest cluster', object: 'orders-of-the-day', cluster: 'c'.repeat(52), want: `o-${createHash('sha256').update('orders-of-the-day').digest('hex').slice(0, 8)}.${'c'.repeat(52)}` },
  ];
  for (const c of cases) {
    await t.test(c.name, () => {
      const got = entityName(c.object, c.cluster);
      assert.equal(got, c.want);
      assert.ok(got.length <= 63 && /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/.test(got), `${got} is a valid Backstage name`);
    });
  }
  await t.test('the same name in three clusters: three refs', () => {
    const refs = ['east', 'west', 'north'].map((cluster) => backstageRef('broker', { namespace: 'shop', name: 'orders' }, cluster));
    assert.deepEqual(refs, ['component:shop/orders.east', 'component:shop/orders.west', 'component:shop/orders.north']);
  });
  await t.test('an EventType: name, title, annotation, the Broker providing it', () => {
    const ctx = { providerId: 'east', baseUrl: 'http://b', cluster: 'east' };
    const api = backstageEntity('eventtype', { namespace: 'shop', name: 'order-created', type: 'com.example.order.created', uid: '', labels: null, annotations: { a: 'b' }, consumedBy: [] }, ctx);
    assert.equal(api.metadata.name, 'order-created.east');
    assert.equal(api.metadata.title, 'com.example.order.created - (east/shop/order-created)');
    assert.deepEqual(api.metadata.annotations, {
      a: 'b',
      'backstage.io/managed-by-location': 'url:http://b',
      'backstage.io/managed-by-origin-location': 'url:http://b',
      'eventmesh.knative.dev/cluster': 'east',
    });
    const orders = backstageEntity('broker', { namespace: 'shop', name: 'orders', uid: '', labels: null, annotations: null, providedEventTypes: ['shop/order-created', `shop/${long}`] }, ctx);
    assert.deepEqual(orders.spec!.providesApis, ['api:shop/order-created.east', `api:shop/${entityName(long, 'east')}`]);
  });
});

test('the in-memory mesh: collisions, deletes, the full listing', async (t) => {
  const ctx = { providerId: 'dev', baseUrl: 'http://b' };
  const broker = { namespace: 'shop', name: 'x', uid: '', labels: null, annotations: null, providedEventTypes: [] };
  const source = { ...broker, group: 'sources.knative.dev', kind: 'PingSource', providedEventTypeTypes: [], providedEventTypes: ['shop/t'] };
  const channel = { ...broker, group: 'messaging.knative.dev', kind: 'InMemoryChannel', providedEventTypes: [] };
  const change = (kind: string, key: string, op: string, e: object, sequence: number) =>
    ({ kind, key, op, epoch: 'e', sequence, entity: e }) as any;
  const load = () => {
    const r = new MeshReplica(ctx);
    r.load({ epoch: 'e', sequence: 3, mesh: { brokers: [broker], eventTypes: [], sources: [source as any], subscribables: [channel as any] } });
    return r;
  };
  await t.test('a source wins over a channel, a channel over a Broker', () => {
    const r = load();
    assert.equal(r.allEntities().length, 1);
    assert.equal(r.entityFor('component:shop/x')!.spec!.type, 'sources.knative.dev:PingSource');
    const noSource = r.apply(change('source', 'sources.knative.dev/PingSource/shop/x', 'deleted', source, 4));
    assert.equal(noSource.upserted[0].spec!.type, 'messaging.knative.dev:InMemoryChannel');
    const onlyBroker = r.apply(change('subscribable', 'messaging.knative.dev/InMemoryChannel/shop/x', 'deleted', channel, 5));
    assert.equal(onlyBroker.upserted[0].spec!.type, 'broker');
    assert.deepEqual(r.apply(change('broker', 'eventing.knative.dev/Broker/shop/x', 'deleted', broker, 6)), { upserted: [], removed: ['component:shop/x'] });
    assert.equal(r.size, 0);
  });
  await t.test('an update of the hidden entity writes the shown one again, unchanged', () => {
    const r = load();
    const c = r.apply(change('broker', 'eventing.knative.dev/Broker/shop/x', 'updated', { ...broker, labels: { a: 'b' } }, 4));
    assert.equal(c.upserted[0].spec!.type, 'sources.knative.dev:PingSource');
  });
  await t.test('deleting what is not there removes the ref', () => {
    const r = new MeshReplica(ctx);
    assert.deepEqual(r.apply(change('broker', 'eventing.knative.dev/Broker/a/b', 'deleted', { ...broker, namespace: 'a', name: 'b' }, 1)), {
      upserted: [],
      removed: ['component:a/b'],
    });
  });
});
