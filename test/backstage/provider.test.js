// Runs the published Backstage provider, unchanged, against the broadcaster at BROADCASTER_URL
// (started by backstage_test.go on examples/mesh) and checks the catalog entities it builds.
const test = require('node:test');
const assert = require('node:assert/strict');
const winston = require('winston');
const { KnativeEventMeshProvider } = require('@knative-extensions/plugin-knative-event-mesh-backend');

test('the Knative Event Mesh provider builds the catalog from the broadcaster', async () => {
  const logger = winston.createLogger({ transports: [new winston.transports.Console({ silent: true })] });
  const provider = new KnativeEventMeshProvider(
    { id: 'broadcaster', baseUrl: process.env.BROADCASTER_URL, token: process.env.BROADCASTER_TOKEN },
    logger, { run: async () => {} });
  let mutation;
  await provider.connect({ applyMutation: async (m) => { mutation = m; }, refresh: async () => {} });
  await provider.run();

  assert.equal(mutation.type, 'full');
  const entities = mutation.entities.map((e) => e.entity);
  const byName = (kind, namespace, name) =>
    entities.find((e) => e.kind === kind && e.metadata.namespace === namespace && e.metadata.name === name);

  // Every EventType becomes an API entity with its consumers.
  const apis = entities.filter((e) => e.kind === 'API');
  assert.equal(apis.length, 10);
  const paid = byName('API', 'shop', 'order-paid');
  assert.ok(paid, 'API shop/order-paid');
  assert.equal(paid.spec.type, 'eventType');
  assert.deepEqual([...paid.metadata.consumedBy].sort(), ['audit-log', 'shipping-service']);
  assert.match(paid.metadata.title, /^com\.example\.shop\.order\.paid - \(shop\/order-paid\)$/);
  assert.deepEqual([...byName('API', 'ops', 'disk-full').metadata.consumedBy], ['pager-duty-bridge']);

  // Brokers, channels and sources become components providing those APIs.
  const orders = byName('Component', 'shop', 'orders');
  assert.ok(orders, 'Component shop/orders');
  assert.deepEqual([...orders.spec.providesApis].sort(), [
    'api:shop/heartbeat', 'api:shop/order-cancelled', 'api:shop/order-created',
    'api:shop/order-paid', 'api:shop/order-shipped', 'api:shop/payment-failed']);
  const alerts = byName('Component', 'ops', 'alerts');
  assert.ok(alerts, 'Component ops/alerts (the channel)');
  assert.deepEqual([...alerts.spec.providesApis].sort(), ['api:ops/cluster-event', 'api:ops/disk-full']);
  assert.ok(byName('Component', 'shop', 'heartbeat'), 'Component shop/heartbeat (the PingSource)');
  assert.equal(entities.length, 15);
});
