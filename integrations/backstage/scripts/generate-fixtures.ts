// Writes test/fixtures/examples-mesh.golden.json: the catalog that the PUBLISHED plugin
// (@knative-extensions/plugin-knative-event-mesh-backend 1.21.0, with its processor) builds from
// the broadcaster serving examples/mesh, plus the consumer Components of the harness, in the real
// catalog backend, normalized (no uid or etag, the broadcaster's URL as ${BASE_URL}).
// Run once, and again only when examples/mesh or the pinned plugin changes:
//   BROADCASTER_BIN=... EXAMPLES_MESH=... node dist/scripts/generate-fixtures.js

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Broadcaster, copyExampleMesh, databaseConfig, golden, startCatalog, waitFor } from '../test/harness';

async function main() {
  const broadcaster = await Broadcaster.start(copyExampleMesh());
  const catalog = await startCatalog({
    plugin: 'published',
    baseUrl: broadcaster.url,
    database: databaseConfig('sqlite', 'fixtures'),
    pollSeconds: 600, // one poll: the catalog then settles
  });
  try {
    let previous = '';
    let stableSince = Date.now();
    const settled = await waitFor('the catalog to settle', async () => {
      const now = JSON.stringify(golden(await catalog.entities(), broadcaster.url), null, 2);
      if (now !== previous) {
        previous = now;
        stableSince = Date.now();
        return undefined;
      }
      // Three processing intervals without a change, with every entity there.
      return Date.now() - stableSince > 10_000 && JSON.parse(now).length === 22 ? now : undefined;
    }, 120_000, 1000);
    const out = path.join(__dirname, '..', '..', 'test', 'fixtures', 'examples-mesh.golden.json');
    fs.writeFileSync(out, settled + '\n');
    console.log(`wrote ${out}`);
  } finally {
    await catalog.stop();
    await broadcaster.stop();
  }
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
