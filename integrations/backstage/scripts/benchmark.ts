// The numbers in docs/benchmarks.md ("Backstage: push against polling"). Not a test: it prints.
//   BROADCASTER_BIN=... EXAMPLES_MESH=... GENMESH_BIN=... node dist/scripts/benchmark.js [latency|ingest|bytes]...
// latency: manifest edit → the changed entity served by the catalog REST API, 100 edits, this
//          module and the published plugin polling every POLL_SECONDS (default 2);
// ingest:  a 10,000-entity mesh (test/load/genmesh) from backend start to every entity served;
// bytes:   what reaches Backstage for one change, against one poll, on both meshes.
// INGEST_PLUGINS=push (or published) measures one of the two ingests; EDITS, POLL_SECONDS.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Broadcaster, Catalog, copyExampleMesh, databaseConfig, BroadcasterProxy, requireEnv, startCatalog, tempDir, waitFor } from '../test/harness';

const EDITS = Number(process.env.EDITS ?? 100);
const POLL_SECONDS = Number(process.env.POLL_SECONDS ?? 2);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  return `n=${s.length} p50=${percentile(s, 50).toFixed(0)} ms p90=${percentile(s, 90).toFixed(0)} ms p99=${percentile(s, 99).toFixed(0)} ms max=${s[s.length - 1].toFixed(0)} ms`;
}

const brokerLabels = 'labels: {app.kubernetes.io/part-of: shop}';

/** Edits the orders Broker's labels EDITS times; each time, how long until the REST API serves it. */
async function editLatency(plugin: 'push' | 'published', stitchingPollMs?: number): Promise<{ served: number[]; streamed: number[] }> {
  const dir = copyExampleMesh();
  const broadcaster = await Broadcaster.start(dir);
  const catalog = await startCatalog({
    plugin,
    baseUrl: broadcaster.url,
    database: databaseConfig('sqlite', `bench-${plugin}`),
    processingIntervalSeconds: 120,
    pollSeconds: POLL_SECONDS,
    stitchingPollMs,
  });
  // Our own watcher beside the catalog: when the change reaches a follower, before the catalog.
  const stream = await fetch(`${broadcaster.url}/v1/watch`);
  const reader = stream.body!.getReader();
  let received = '';
  const seenAt = new Map<number, number>();
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      received += new TextDecoder().decode(value);
      for (const m of received.matchAll(/"bench":"(\d+)"/g)) {
        if (!seenAt.has(Number(m[1]))) seenAt.set(Number(m[1]), performance.now());
      }
      received = received.slice(-4096);
    }
  })();
  const file = path.join(dir, 'shop', 'broker.yaml');
  const original = fs.readFileSync(file, 'utf8');
  const url = `${catalog.url}/entities/by-name/component/shop/orders`;
  const served = async (i: number) => {
    const res = await fetch(url);
    if (res.status !== 200) return undefined;
    const e = (await res.json()) as any;
    return e.metadata.labels?.bench === String(i) ? true : undefined;
  };
  try {
    await waitFor('the first ingest', () => catalog.entity('component:shop/orders'), 60_000);
    const times: number[] = [];
    const streamed: number[] = [];
    for (let i = 1; i <= EDITS; i++) {
      const started = performance.now();
      fs.writeFileSync(file, original.replace(brokerLabels, `labels: {app.kubernetes.io/part-of: shop, bench: "${i}"}`));
      await waitFor(`edit ${i}`, () => served(i), 60_000, 5);
      times.push(performance.now() - started);
      if (seenAt.has(i)) streamed.push(seenAt.get(i)! - started);
      // Apart, so edits are not gathered into one change.
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 100));
    }
    return { served: times, streamed };
  } finally {
    await reader.cancel().catch(() => {});
    await catalog.stop();
    await broadcaster.stop();
  }
}

async function entityCount(catalog: Catalog): Promise<number> {
  const res = await fetch(`${catalog.url}/entities/by-query?limit=1&filter=spec.system=knative-event-mesh`);
  return ((await res.json()) as any).totalItems;
}

function bigMesh(entities: number): string {
  const dir = tempDir('bigmesh-');
  const yaml = execFileSync(requireEnv('GENMESH_BIN'), ['-entities', String(entities)], { maxBuffer: 1 << 30, encoding: 'utf8' });
  fs.writeFileSync(path.join(dir, 'mesh.yaml'), yaml);
  return dir;
}

/** From backend start until the REST API serves every entity of a big mesh. */
async function ingest(plugin: 'push' | 'published', entities: number): Promise<{ ms: number; count: number }> {
  const broadcaster = await Broadcaster.start(bigMesh(entities));
  const want = (await broadcaster.mesh()).mesh;
  const total = want.brokers.length + want.eventTypes.length + want.sources.length + want.subscribables.length;
  const started = performance.now();
  const catalog = await startCatalog({
    plugin,
    baseUrl: broadcaster.url,
    database: databaseConfig('sqlite', `ingest-${plugin}`),
    processingIntervalSeconds: 600,
    pollSeconds: 3600,
    consumers: false,
  });
  try {
    await waitFor(`${total} entities served`, async () => ((await entityCount(catalog)) >= total ? true : undefined), 30 * 60_000, 1000);
    return { ms: performance.now() - started, count: total };
  } finally {
    await catalog.stop();
    await broadcaster.stop();
  }
}

/** Bytes on the wire to Backstage: one edit's deltas on the watch stream, one published poll. */
async function bytes(dir: string, file: string, from: string, to: string): Promise<{ delta: number; poll: number; entities: number }> {
  const broadcaster = await Broadcaster.start(dir);
  const proxy = new BroadcasterProxy(broadcaster.url);
  await proxy.start();
  const push = await startCatalog({ plugin: 'push', baseUrl: proxy.url, database: databaseConfig('sqlite', 'bytes'), consumers: false });
  try {
    const watch = await waitFor('the stream', async () => proxy.watchRequests()[0], 30_000);
    await waitFor('the snapshot', async () => (watch.bytes > 0 ? true : undefined), 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    const before = watch.bytes;
    const p = path.join(dir, file);
    fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace(from, to));
    await waitFor('the delta', async () => (watch.bytes > before ? true : undefined), 30_000);
    await new Promise((r) => setTimeout(r, 1000));
    const delta = watch.bytes - before;
    // A poll as the published plugin makes it: Node's fetch, which asks for gzip.
    const pollStart = proxy.requests.length;
    await (await fetch(`${proxy.url}/v1/getEventMesh`, { headers: { Authorization: 'Bearer ' } })).json();
    const poll = proxy.requests[pollStart].bytes;
    const m = (await broadcaster.mesh()).mesh;
    return { delta, poll, entities: m.brokers.length + m.eventTypes.length + m.sources.length + m.subscribables.length };
  } finally {
    await push.stop();
    await proxy.stop();
    await broadcaster.stop();
  }
}

async function main() {
  const what = process.argv.slice(2);
  const all = what.length === 0;
  if (all || what.includes('latency')) {
    const push = await editLatency('push');
    console.log(`edit → on the watch stream:           ${summary(push.streamed)}`);
    console.log(`edit → served, push:                   ${summary(push.served)}`);
    const fastStitch = await editLatency('push', 100);
    console.log(`edit → served, push, stitching 100 ms: ${summary(fastStitch.served)}`);
    console.log(`edit → served, poll every ${POLL_SECONDS} s:        ${summary((await editLatency('published')).served)}`);
  }
  if (all || what.includes('ingest')) {
    const plugins = (process.env.INGEST_PLUGINS ?? 'push,published').split(',') as Array<'push' | 'published'>;
    for (const plugin of plugins) {
      const r = await ingest(plugin, 10_000);
      console.log(`ingest ${r.count} entities, ${plugin}: ${(r.ms / 1000).toFixed(1)} s`);
    }
  }
  if (all || what.includes('bytes')) {
    const small = await bytes(copyExampleMesh(), 'shop/broker.yaml', brokerLabels, 'labels: {app.kubernetes.io/part-of: shop, tier: gold}');
    console.log(`bytes, ${small.entities} entities: one change ${small.delta} B on the stream; one poll ${small.poll} B`);
    const bigDir = bigMesh(10_000);
    const big = await bytes(bigDir, 'mesh.yaml', 'name: broker-0, namespace: ns-0, labels: {app: shop}', 'name: broker-0, namespace: ns-0, labels: {app: shop, tier: gold}');
    console.log(`bytes, ${big.entities} entities: one change ${big.delta} B on the stream; one poll ${big.poll} B`);
  }
  process.exit(0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
