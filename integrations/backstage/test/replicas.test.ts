// Two Backstage replicas on one catalog database: the follower is a scheduled task of global
// scope, so exactly one of them follows the broadcaster; when that one stops, the other takes
// over and the catalog keeps following. Each replica presents its own token, so the proxy in
// front of the broadcaster tells them apart.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Broadcaster, copyExampleMesh, databaseConfig, databaseKinds, dropDatabases, BroadcasterProxy, startCatalog, waitFor } from './harness';

for (const db of databaseKinds().filter((kind) => kind === 'postgres')) {
  test(`two replicas: one follows at a time, the other takes over (${db})`, async (t) => {
    const dir = copyExampleMesh();
    const broadcaster = await Broadcaster.start(dir);
    const proxy = new BroadcasterProxy(broadcaster.url);
    await proxy.start();
    const database = databaseConfig(db, 'replicas');
    const replica = (token: string) =>
      startCatalog({ plugin: 'push', baseUrl: proxy.url, database, providerConfig: { token } });
    const replicas = new Map([
      ['Bearer replica-a', await replica('replica-a')],
      ['Bearer replica-b', await replica('replica-b')],
    ]);
    t.after(async () => {
      for (const r of replicas.values()) await r.stop();
      await proxy.stop();
      await broadcaster.stop();
      await dropDatabases(database);
    });

    await waitFor('a follower', async () => (proxy.openStreams() === 1 ? true : undefined), 60_000);
    // Several scheduler checks later, still only one.
    await new Promise((r) => setTimeout(r, 12_000));
    assert.equal(proxy.openStreams(), 1, 'one stream');
    const followers = new Set(proxy.watchRequests().map((r) => r.authorization));
    assert.equal(followers.size, 1, `one replica followed: ${[...followers].join(', ')}`);
    const [leader] = followers;
    const other = [...replicas.keys()].find((k) => k !== leader)!;

    await replicas.get(leader!)!.stop();
    replicas.delete(leader!);
    await waitFor('the other replica to follow', async () => {
      const r = proxy.watchRequests().at(-1)!;
      return r.authorization === other && proxy.openStreams() === 1 ? true : undefined;
    }, 180_000, 250);

    const broker = path.join(dir, 'shop', 'broker.yaml');
    fs.writeFileSync(broker, fs.readFileSync(broker, 'utf8').replace('labels: {app.kubernetes.io/part-of: shop}', 'labels: {app.kubernetes.io/part-of: shop, tier: gold}'));
    await waitFor('the edit to show', async () => {
      const e = await replicas.get(other)!.entity('component:shop/orders');
      return e?.metadata.labels?.tier === 'gold' ? true : undefined;
    }, 90_000, 250);
  });
}
