// Replacing the published plugin with this module on the same catalog database keeps every
// entity: same refs, same uids (nothing evicted and re-created), same catalog afterwards.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  Broadcaster,
  catalogState,
  copyExampleMesh,
  databaseConfig,
  databaseKinds,
  dropDatabases,
  golden,
  startCatalog,
  waitFor,
} from './harness';

const fixture = JSON.stringify(
  JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'test', 'fixtures', 'examples-mesh.golden.json'), 'utf8')),
);

for (const db of databaseKinds()) {
  test(`switching from the published plugin keeps entity uids (${db})`, async (t) => {
    const dir = copyExampleMesh();
    const broadcaster = await Broadcaster.start(dir);
    t.after(() => broadcaster.stop());
    const database = databaseConfig(db, 'migration');
    t.after(() => dropDatabases(database));
    const settled = async (catalog: Awaited<ReturnType<typeof startCatalog>>) =>
      waitFor('the catalog to equal the golden file', async () => {
        return JSON.stringify(golden(await catalog.entities(), broadcaster.url)) === fixture ? true : undefined;
      }, 180_000, 500);

    const published = await startCatalog({ plugin: 'published', baseUrl: broadcaster.url, database, pollSeconds: 600 });
    let before;
    try {
      await settled(published);
      before = await catalogState(published, broadcaster.url);
    } finally {
      await published.stop();
    }

    const push = await startCatalog({ plugin: 'push', baseUrl: broadcaster.url, database });
    try {
      await settled(push);
      const after = await catalogState(push, broadcaster.url);
      assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort());
      for (const [ref, { uid }] of before) {
        assert.equal(after.get(ref)!.uid, uid, `${ref} kept its uid`);
      }
      // The module follows from here on (the published plugin no longer runs): an edit shows.
      const broker = path.join(dir, 'shop', 'broker.yaml');
      fs.writeFileSync(broker, fs.readFileSync(broker, 'utf8').replace('labels: {app.kubernetes.io/part-of: shop}', 'labels: {app.kubernetes.io/part-of: shop, tier: gold}'));
      const orders = await waitFor('the edit to show', async () => {
        const e = await push.entity('component:shop/orders');
        return e?.metadata.labels?.tier === 'gold' ? e : undefined;
      }, 90_000, 250);
      assert.equal(orders.metadata.uid, before.get('component:shop/orders')!.uid);
    } finally {
      await push.stop();
    }
  });
}
