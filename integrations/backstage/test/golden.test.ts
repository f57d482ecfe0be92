// The initial ingest: this module, in the real catalog, on the broadcaster serving examples/mesh,
// builds exactly the catalog the published plugin builds (test/fixtures, made by
// scripts/generate-fixtures.ts from the published package): entities and relations.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Broadcaster, Catalog, copyExampleMesh, databaseConfig, databaseKinds, dropDatabases, golden, startCatalog, waitFor } from './harness';

const fixture = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', '..', 'test', 'fixtures', 'examples-mesh.golden.json'), 'utf8'),
);

for (const db of databaseKinds()) {
  test(`initial ingest equals the published plugin's catalog (${db})`, async (t) => {
    const broadcaster = await Broadcaster.start(copyExampleMesh());
    t.after(() => broadcaster.stop());
    const database = databaseConfig(db, 'golden');
    const catalog: Catalog = await startCatalog({ plugin: 'push', baseUrl: broadcaster.url, database });
    t.after(async () => {
      await catalog.stop();
      await dropDatabases(database);
    });
    let last: unknown;
    try {
      await waitFor('the catalog to equal the golden file', async () => {
        last = golden(await catalog.entities(), broadcaster.url);
        return JSON.stringify(last) === JSON.stringify(fixture) ? true : undefined;
      }, 180_000, 500);
    } catch (error) {
      assert.deepEqual(last, fixture, String(error));
    }
  });
}
