// Push, end to end: the real catalog follows the real broadcaster through a proxy that can cut
// the stream, drop an event and answer 410. Every step edits the manifests and checks that the
// catalog changes exactly where it should, that its mesh entities are exactly what the
// published plugin would build from the broadcaster's mesh, and how the follower got there
// (resumed or resynced, from the requests the proxy saw).
//
// The catalog's processing interval is two minutes here: every change must show long before,
// so entities whose relations change are processed at once, not on the catalog's next pass.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  Broadcaster,
  Catalog,
  catalogState,
  changedRefs,
  copyExampleMesh,
  databaseConfig,
  databaseKinds,
  differenceFromPublished,
  dropDatabases,
  golden,
  BroadcasterProxy,
  startCatalog,
  waitFor,
} from './harness';

const fixture = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', '..', 'test', 'fixtures', 'examples-mesh.golden.json'), 'utf8'),
);

/** A change shows within this; the processing interval is 120 s. */
const CONVERGE_MS = 30_000;

for (const db of databaseKinds()) {
  test(`push follows the broadcaster (${db})`, async (t) => {
    const dir = copyExampleMesh();
    const broadcaster = await Broadcaster.start(dir);
    const proxy = new BroadcasterProxy(broadcaster.url);
    await proxy.start();
    const baseUrl = proxy.url;
    const database = databaseConfig(db, 'push');
    const catalog: Catalog = await startCatalog({
      plugin: 'push',
      baseUrl,
      database,
      processingIntervalSeconds: 120,
      providerConfig: {
        // Let the consumer Components settle first, so the first pass finds them.
        schedule: { frequency: { seconds: 30 }, timeout: { minutes: 10 }, initialDelay: { seconds: 4 } },
        push: { minReconnectDelay: { milliseconds: 100 }, maxReconnectDelay: { milliseconds: 500 } },
      },
    });
    t.after(async () => {
      await catalog.stop();
      await proxy.stop();
      await broadcaster.stop();
      await dropDatabases(database);
    });

    /** Waits until exactly `want` changed since `before` and the mesh entities match the published mapping. */
    const converge = async (what: string, before: Map<string, { uid: string; json: string }>, want: string[]) => {
      let last = '';
      try {
        await waitFor(what, async () => {
          const now = await catalogState(catalog, baseUrl);
          const changed = changedRefs(before, now);
          const difference = await differenceFromPublished(catalog, broadcaster, baseUrl);
          last = `changed: ${JSON.stringify(changed)}\nfrom published: ${difference ?? 'none'}`;
          return JSON.stringify(changed) === JSON.stringify(want) && !difference ? now : undefined;
        }, CONVERGE_MS, 250);
      } catch (error) {
        assert.fail(`${(error as Error).message}\nlast seen: ${last}`);
      }
      // And nothing else moves afterwards.
      await new Promise((r) => setTimeout(r, 1500));
      const settled = await catalogState(catalog, baseUrl);
      assert.deepEqual(changedRefs(before, settled), want, `${what}: more changed after converging`);
      for (const [ref, { uid }] of before) {
        if (settled.has(ref)) assert.equal(settled.get(ref)!.uid, uid, `${ref} kept its uid`);
      }
      return settled;
    };
    const edit = (file: string, from: string, to: string) => {
      const p = path.join(dir, file);
      const text = fs.readFileSync(p, 'utf8');
      assert.ok(text.includes(from), `${file} contains ${from}`);
      fs.writeFileSync(p, text.replace(from, to));
    };
    const lastWatch = () => proxy.watchRequests().at(-1)!;

    let state = new Map<string, { uid: string; json: string }>();

    await t.test('the first snapshot is the published catalog', async () => {
      await waitFor('the catalog to equal the golden file', async () => {
        return JSON.stringify(golden(await catalog.entities(), baseUrl)) === JSON.stringify(fixture) ? true : undefined;
      }, 180_000, 500);
      state = await catalogState(catalog, baseUrl);
      assert.equal(proxy.watchRequests().length, 1);
      assert.equal(proxy.watchRequests()[0].firstEvent, 'snapshot');
    });

    await t.test('a Trigger edit changes the two APIs and the consumer it moves between', async () => {
      edit('shop/triggers.yaml', 'filter: {attributes: {type: com.example.shop.order.paid}}', 'filter: {attributes: {type: com.example.shop.order.shipped}}');
      state = await converge('the trigger edit', state, ['api:shop/order-paid', 'api:shop/order-shipped', 'component:shop/shipping']);
      const shipping = JSON.parse(state.get('component:shop/shipping')!.json);
      assert.deepEqual(
        shipping.relations.filter((r: any) => r.type === 'consumesApi').map((r: any) => r.targetRef),
        ['api:shop/order-shipped'],
      );
      assert.equal(proxy.watchRequests().length, 1, 'still the first stream: pushed, not polled');
    });

    await t.test('a deleted file removes its entities and updates what referenced them', async () => {
      fs.rmSync(path.join(dir, 'sources', 'heartbeat.yaml'));
      state = await converge('the delete', state, ['api:shop/heartbeat', 'component:shop/audit', 'component:shop/heartbeat', 'component:shop/orders']);
      assert.ok(!state.has('api:shop/heartbeat') && !state.has('component:shop/heartbeat'));
    });

    await t.test('a cut stream resumes from its last event', async () => {
      const before = proxy.watchRequests().length;
      assert.equal(proxy.cutAll(), 1, 'one stream was open');
      edit('shop/broker.yaml', 'labels: {app.kubernetes.io/part-of: shop}', 'labels: {app.kubernetes.io/part-of: shop, tier: gold}');
      state = await converge('the edit after a cut', state, ['component:shop/orders']);
      const resumed = proxy.watchRequests().slice(before);
      assert.ok(resumed.length >= 1);
      assert.ok(resumed.every((r) => r.lastEventId !== undefined), 'reconnected with Last-Event-ID');
      assert.equal(lastWatch().firstEvent, 'delta', 'resumed with deltas, no snapshot');
    });

    await t.test('a lost delta (a meshseq gap) resyncs from a snapshot', async () => {
      const before = proxy.watchRequests().length;
      proxy.dropDeltas = 1;
      // A new EventType on the orders Broker is two deltas: the API, then the Broker; the first is lost.
      fs.writeFileSync(
        path.join(dir, 'shop', 'refund.yaml'),
        'apiVersion: eventing.knative.dev/v1beta2\nkind: EventType\nmetadata: {name: refund-requested, namespace: shop}\n' +
          'spec: {type: com.example.shop.refund.requested, reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: orders}}\n',
      );
      state = await converge('the resync after a gap', state, ['api:shop/refund-requested', 'component:shop/audit', 'component:shop/orders']);
      assert.equal(proxy.dropped.length, 1);
      assert.match(proxy.dropped[0], /eventtype\.added/);
      const after = proxy.watchRequests().slice(before);
      assert.equal(after.length, 1, 'one new stream');
      assert.equal(after[0].lastEventId, undefined, 'a fresh stream, not a resumed one');
      assert.equal(after[0].firstEvent, 'snapshot');
    });

    await t.test('a 410 resyncs from a snapshot, which also brings deletes it never saw', async () => {
      const before = proxy.watchRequests().length;
      const release = proxy.holdWatches();
      proxy.goneCount = 1;
      proxy.cutAll();
      fs.rmSync(path.join(dir, 'shop', 'refund.yaml'));
      await waitFor('the broadcaster to drop the EventType', async () => {
        const { mesh } = await broadcaster.mesh();
        return mesh.eventTypes.some((e: any) => e.namespace === 'shop' && e.name === 'refund-requested') ? undefined : true;
      }, 10_000);
      proxy.dropDeltas = 1000; // the resumed stream may not carry the delete: only the snapshot may
      release();
      state = await converge('the resync after 410', state, ['api:shop/refund-requested', 'component:shop/audit', 'component:shop/orders']);
      proxy.dropDeltas = 0;
      const after = proxy.watchRequests().slice(before);
      assert.equal(after[0].status, 410);
      assert.notEqual(after[0].lastEventId, undefined, 'the refused request was a resume');
      assert.equal(after[1].lastEventId, undefined, 'then a fresh stream');
      assert.equal(after[1].firstEvent, 'snapshot');
    });

    await t.test('a restarted broadcaster (a new epoch) converges with no duplicate and no orphan', async () => {
      const before = proxy.watchRequests().length;
      await broadcaster.stop();
      // Changed while nobody serves: the channel and its EventTypes go, the heartbeat comes back.
      fs.rmSync(path.join(dir, 'channels', 'alerts.yaml'));
      fs.copyFileSync(path.join(process.env.EXAMPLES_MESH!, 'sources', 'heartbeat.yaml'), path.join(dir, 'sources', 'heartbeat.yaml'));
      await broadcaster.launch();
      state = await converge('the restart', state, [
        'api:ops/cluster-event',
        'api:ops/disk-full',
        'api:shop/heartbeat',
        'component:ops/alerts',
        'component:ops/cluster-watch',
        'component:ops/pager',
        'component:shop/audit',
        'component:shop/heartbeat',
        'component:shop/orders',
      ]);
      const served = proxy.watchRequests().slice(before).filter((r) => r.status === 200);
      assert.equal(served.length, 1, 'one stream once the broadcaster is back');
      assert.notEqual(served[0].lastEventId, undefined, 'it asked to resume');
      assert.equal(served[0].firstEvent, 'snapshot', 'the new epoch answered with a snapshot');
      const refs = (await catalog.entities()).map((e) => `${e.kind}:${e.metadata.namespace}/${e.metadata.name}`);
      assert.equal(new Set(refs).size, refs.length, 'no duplicate');
    });
  });
}
