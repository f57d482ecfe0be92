// A configuration mistake stops the backend at start-up with the offending key named, before
// anything reaches the catalog.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { databaseConfig, startCatalog } from './harness';

test('a bad baseUrl fails the backend start, naming the key', async () => {
  await assert.rejects(
    startCatalog({ plugin: 'push', baseUrl: 'broadcaster:8080', database: databaseConfig('sqlite', 'startup') }),
    (error: Error) => {
      assert.match(String(error.stack ?? error), /catalog\.providers\.knativeEventMesh\.test\.baseUrl: want an http or https URL, got "broadcaster:8080"/);
      return true;
    },
  );
});

test('two providers of one cluster fail the backend start, naming the key', async () => {
  await assert.rejects(
    startCatalog({
      plugin: 'push',
      baseUrl: '',
      providers: {
        east: { baseUrl: 'http://127.0.0.1:1', cluster: 'east', naming: 'cluster' },
        west: { baseUrl: 'http://127.0.0.1:2', cluster: 'east', naming: 'cluster' },
      },
      database: databaseConfig('sqlite', 'startup-fleet'),
    }),
    (error: Error) => {
      assert.match(String(error.stack ?? error), /catalog\.providers\.knativeEventMesh\.west\.cluster: "east" is already the cluster of catalog\.providers\.knativeEventMesh\.east\.cluster/);
      return true;
    },
  );
});
