// A Broker and a PingSource with the same namespace and name map to one Component ref. The
// published plugin's first ingest leaves the source's entity (it lists sources last and the
// catalog keeps the last of equal refs); this module shows the same one, deterministically, and
// when either goes away the other one stays, under the same uid.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  Broadcaster,
  copyExampleMesh,
  databaseConfig,
  differenceFromPublished,
  dropDatabases,
  providedPart,
  startCatalog,
  waitFor,
} from './harness';

const broker =
  'apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: collide, namespace: shop}\n';
const source =
  'apiVersion: sources.knative.dev/v1\nkind: PingSource\nmetadata: {name: collide, namespace: shop}\n' +
  'spec: {schedule: "* * * * *", sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: orders}}}\n';
const REF = 'component:shop/collide';

function collisionMesh(): string {
  const dir = copyExampleMesh();
  fs.writeFileSync(path.join(dir, 'shop', 'collide-broker.yaml'), broker);
  fs.writeFileSync(path.join(dir, 'sources', 'collide-source.yaml'), source);
  return dir;
}

test('the published plugin shows the source when a Broker and a source share a name', async (t) => {
  const broadcaster = await Broadcaster.start(collisionMesh());
  t.after(() => broadcaster.stop());
  const database = databaseConfig('sqlite', 'collision-published');
  const catalog = await startCatalog({ plugin: 'published', baseUrl: broadcaster.url, database, pollSeconds: 600 });
  t.after(() => catalog.stop());
  const entity = await waitFor('the collided entity', () => catalog.entity(REF), 30_000);
  assert.equal(entity.spec?.type, 'sources.knative.dev:PingSource');
});

test('this module shows the same one, and keeps the other when one goes away, both ways', async (t) => {
  const dir = collisionMesh();
  const broadcaster = await Broadcaster.start(dir);
  t.after(() => broadcaster.stop());
  const database = databaseConfig('sqlite', 'collision');
  const catalog = await startCatalog({ plugin: 'push', baseUrl: broadcaster.url, database });
  t.after(async () => {
    await catalog.stop();
    await dropDatabases(database);
  });

  const shows = async (type: string) => {
    const entity = await waitFor(`${REF} to be the ${type}`, async () => {
      const e = await catalog.entity(REF);
      return e?.spec?.type === type && !(await differenceFromPublished(catalog, broadcaster, broadcaster.url)) ? e : undefined;
    }, 60_000, 250);
    return entity;
  };

  const first = await shows('sources.knative.dev:PingSource');
  const published = (await differenceFromPublished(catalog, broadcaster, broadcaster.url)) ?? 'same';
  assert.equal(published, 'same');

  // The source goes: the Broker stays, as the same catalog entity.
  fs.rmSync(path.join(dir, 'sources', 'collide-source.yaml'));
  const brokerShown = await shows('broker');
  assert.equal(brokerShown.metadata.uid, first.metadata.uid);

  // It comes back and wins again; then the Broker goes and the source stays.
  fs.writeFileSync(path.join(dir, 'sources', 'collide-source.yaml'), source);
  await shows('sources.knative.dev:PingSource');
  fs.rmSync(path.join(dir, 'shop', 'collide-broker.yaml'));
  await new Promise((r) => setTimeout(r, 1500));
  const sourceShown = await shows('sources.knative.dev:PingSource');
  assert.equal(sourceShown.metadata.uid, first.metadata.uid);
  assert.deepEqual(providedPart(sourceShown), providedPart(first));

  // Both gone: the entity goes.
  fs.rmSync(path.join(dir, 'sources', 'collide-source.yaml'));
  await waitFor(`${REF} to go`, async () => ((await catalog.entity(REF)) ? undefined : true), 60_000, 250);
});
