// One catalog for several clusters: three real broadcasters (east, west, north: --cluster-name)
// on copies of examples/mesh, so every cluster holds the same shop/orders and every other name,
// and one provider per broadcaster with naming: cluster. Every mesh entity is in the catalog
// three times, named <name>.<cluster>, and keeps its uid across a restart of the module and of a
// broadcaster; the periodic full mutation puts back an entity removed behind the module's back.
// With the option off, a broadcaster with a cluster name still gives the published plugin's
// catalog (the drop-in golden file).

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Entity } from '@backstage/catalog-model';
import {
  Broadcaster,
  Catalog,
  copyExampleMesh,
  databaseConfig,
  databaseKinds,
  dropDatabases,
  golden,
  meshEntities,
  refOf,
  startCatalog,
  tempDir,
  waitFor,
} from './harness';

const fixtures = path.join(__dirname, '..', '..', 'test', 'fixtures');
const dropIn = JSON.parse(fs.readFileSync(path.join(fixtures, 'examples-mesh.golden.json'), 'utf8'));
/** One cluster's entities with naming: cluster, its name and URL written ${CLUSTER} and ${BASE_URL}. */
const clusterFixture = JSON.parse(fs.readFileSync(path.join(fixtures, 'examples-mesh.cluster.golden.json'), 'utf8'));

const CLUSTERS = ['east', 'west', 'north'];

/** A cluster's mesh entities as the cluster fixture holds them. */
function clusterGolden(entities: Entity[], baseUrl: string, cluster: string): unknown {
  return JSON.parse(JSON.stringify(golden(meshEntities(entities, baseUrl), baseUrl)).split(cluster).join('${CLUSTER}'));
}

/** Waits until every cluster's entities equal the fixture; on a timeout, writes what it saw beside the test's temp files. */
async function converged(catalog: Catalog, broadcasters: Map<string, Broadcaster>, what: string): Promise<Entity[]> {
  let last: Record<string, unknown> = {};
  try {
    return await waitFor(what, async () => {
      const entities = await catalog.entities();
      last = {};
      for (const [cluster, b] of broadcasters) last[cluster] = clusterGolden(entities, b.url, cluster);
      return Object.values(last).every((got) => JSON.stringify(got) === JSON.stringify(clusterFixture)) ? entities : undefined;
    }, 120_000, 500);
  } catch (error) {
    const file = path.join(tempDir('fleet-seen-'), 'seen.json');
    fs.writeFileSync(file, JSON.stringify(last, null, 2));
    assert.fail(`${(error as Error).message}\nwhat each cluster had: ${file}`);
  }
}

function uids(entities: Entity[]): Map<string, string> {
  return new Map(entities.map((e) => [refOf(e), e.metadata.uid!]));
}

for (const db of databaseKinds()) {
  test(`three clusters with the same names, naming: cluster (${db})`, async (t) => {
    const broadcasters = new Map<string, Broadcaster>();
    for (const cluster of CLUSTERS) {
      const b = await Broadcaster.start(copyExampleMesh(), ['--cluster-name', cluster]);
      t.after(() => b.stop());
      broadcasters.set(cluster, b);
    }
    const providers = Object.fromEntries(
      CLUSTERS.map((cluster) => [
        cluster,
        { baseUrl: broadcasters.get(cluster)!.url, cluster, naming: 'cluster', push: { fullMutationInterval: { seconds: 2 } } },
      ]),
    );
    const database = databaseConfig(db, 'fleet');
    t.after(() => dropDatabases(database));
    const start = () => startCatalog({ plugin: 'push', baseUrl: '', providers, database });

    let catalog = await start();
    let before: Map<string, string>;
    try {
      const entities = await converged(catalog, broadcasters, 'three clusters in the catalog');
      before = uids(entities);

      await t.test('every mesh entity three times, one per cluster, none under its plain name', () => {
        const meshRefs: string[] = [];
        for (const { ref, entity } of dropIn as Array<{ ref: string; entity: Entity }>) {
          // The drop-in golden file's mesh entities (the consumer Components come from elsewhere).
          if (entity.metadata.annotations?.['backstage.io/managed-by-location'] !== 'url:${BASE_URL}') continue;
          meshRefs.push(ref);
          const perCluster = CLUSTERS.map((cluster) => `${ref}.${cluster}`);
          const got = perCluster.map((r) => before.get(r));
          assert.ok(got.every((uid) => uid !== undefined), `${perCluster.join(', ')} all present`);
          assert.equal(new Set(got).size, 3, `${ref}: three distinct entities (uids ${got.join(', ')})`);
          assert.ok(!before.has(ref), `${ref} is not there under its plain name`);
        }
        assert.ok(meshRefs.includes('component:shop/orders'));
        const orders = CLUSTERS.map((cluster) => entities.find((e) => refOf(e) === `component:shop/orders.${cluster}`)!);
        assert.deepEqual(orders.map((e) => e.metadata.title), ['orders (east)', 'orders (west)', 'orders (north)']);
        assert.deepEqual(orders.map((e) => e.metadata.annotations?.['eventmesh.knative.dev/cluster']), CLUSTERS);
        assert.deepEqual(orders.map((e) => e.spec?.lifecycle), CLUSTERS, 'the lifecycle is the provider id, as before');
      });
    } finally {
      await catalog.stop();
    }

    await t.test('a restarted module keeps every name and uid', async () => {
      // Changed while the module is down, so the new module's first full mutation shows.
      const east = broadcasters.get('east')!;
      const file = path.join(east.dir, 'shop', 'broker.yaml');
      fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('labels: {app.kubernetes.io/part-of: shop}', 'labels: {app.kubernetes.io/part-of: shop, restarted: "yes"}'));
      await waitFor('east to serve the edit', async () => {
        const { mesh } = await east.mesh();
        return mesh.brokers.some((b: any) => b.name === 'orders' && b.labels?.restarted === 'yes') ? true : undefined;
      }, 10_000);
      catalog = await start();
      await waitFor('the new module to write east\'s edit', async () => {
        const e = await catalog.entity('component:shop/orders.east');
        return e?.metadata.labels?.restarted === 'yes' ? e : undefined;
      }, 60_000, 250);
      assert.deepEqual(uids(await catalog.entities()), before);
    });

    try {
      await t.test('a restarted broadcaster (a new epoch) changes its cluster only, uids kept', async () => {
        const west = broadcasters.get('west')!;
        await west.stop();
        const file = path.join(west.dir, 'shop', 'broker.yaml');
        fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('labels: {app.kubernetes.io/part-of: shop}', 'labels: {app.kubernetes.io/part-of: shop, tier: gold}'));
        await west.launch();
        const orders = await waitFor('west\'s edited Broker', async () => {
          const e = await catalog.entity('component:shop/orders.west');
          return e?.metadata.labels?.tier === 'gold' ? e : undefined;
        }, 60_000, 250);
        assert.equal(orders.metadata.uid, before.get('component:shop/orders.west'));
        const entities = await catalog.entities();
        assert.deepEqual(uids(entities), before);
        for (const cluster of ['east', 'north']) {
          const e = entities.find((x) => refOf(x) === `component:shop/orders.${cluster}`)!;
          assert.equal(e.metadata.labels?.tier, undefined, `${cluster}'s orders untouched`);
        }
      });

      await t.test('an entity removed from the catalog behind the module comes back with the periodic full mutation', async () => {
        const ref = 'api:shop/order-created.north';
        const removed = await catalog.entity(ref);
        assert.ok(removed);
        const res = await fetch(`${catalog.url}/entities/by-uid/${removed.metadata.uid}`, { method: 'DELETE' });
        assert.equal(res.status, 204, await res.text());
        const back = await waitFor(`${ref} to come back`, async () => {
          const e = await catalog.entity(ref);
          return e && e.metadata.uid !== removed.metadata.uid ? e : undefined;
        }, 30_000, 250);
        assert.equal(back.metadata.title, removed.metadata.title);
        assert.deepEqual(back.spec, removed.spec);
      });
    } finally {
      await catalog.stop();
    }
  });

  test(`one broadcaster with a cluster name, naming off: the published plugin's catalog (${db})`, async (t) => {
    const broadcaster = await Broadcaster.start(copyExampleMesh(), ['--cluster-name', 'east']);
    t.after(() => broadcaster.stop());
    const snapshot = await broadcaster.mesh();
    assert.equal((snapshot as { cluster?: string }).cluster, 'east', 'the broadcaster names its cluster');
    const database = databaseConfig(db, 'fleet-dropin');
    const catalog = await startCatalog({ plugin: 'push', baseUrl: broadcaster.url, database });
    t.after(async () => {
      await catalog.stop();
      await dropDatabases(database);
    });
    let last: unknown;
    try {
      await waitFor('the catalog to equal the drop-in golden file', async () => {
        last = golden(await catalog.entities(), broadcaster.url);
        return JSON.stringify(last) === JSON.stringify(dropIn) ? true : undefined;
      }, 120_000, 500);
    } catch (error) {
      assert.deepEqual(last, dropIn, String(error));
    }
  });
}
