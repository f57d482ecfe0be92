// MQTT.js and the CloudEvents JavaScript SDK on every message under the prefix and on the side
// topics: each is decoded by what it says it is. A message the SDK's MQTT binding takes for an
// event must decode and validate; any other must be what its content type says (JSON), or
// empty when it has none.
// Usage: node mqtt-decode.mjs BROKER_URL PREFIX. One JSON line per message; "ready" once
// subscribed; exits on the line "close" on stdin.
import mqtt from 'mqtt';
import { MQTT, MQTTMessageFactory } from 'cloudevents';
import * as readline from 'node:readline';

const [url, prefix] = process.argv.slice(2);
const client = mqtt.connect(url, { protocolVersion: 5, clean: true, clientId: `stock-decoder-${process.pid}` });
const topics = [`${prefix}/#`, `${prefix}-status`, `${prefix}-info`, `${prefix}-sweep/#`];
client.on('connect', () => {
  client.subscribe(topics, { qos: 1 }, (err) => {
    process.stdout.write(JSON.stringify({ ready: !err, error: err ? String(err) : undefined }) + '\n');
  });
});
client.on('error', (err) => process.stdout.write(JSON.stringify({ clientError: String(err) }) + '\n'));
client.on('message', (topic, payload, packet) => {
  const contentType = packet.properties?.contentType;
  const body = payload.toString('utf8');
  const message = MQTTMessageFactory(contentType, packet.properties?.userProperties ?? {}, body);
  const out = { topic, contentType: contentType ?? null, retain: packet.retain, bytes: payload.length, ok: true };
  try {
    if (MQTT.isEvent(message)) {
      out.as = 'cloudevent';
      const ev = MQTT.toEvent(message, true);
      ev.validate();
      out.type = ev.type;
      out.id = ev.id;
      out.meshseq = ev.meshseq;
    } else if (contentType === 'application/json') {
      out.as = 'json';
      JSON.parse(body);
    } else if (contentType === undefined) {
      out.as = 'empty';
      if (payload.length !== 0) throw new Error(`${payload.length} bytes without a content type`);
    } else {
      throw new Error(`content type ${contentType} is neither an event nor JSON`);
    }
  } catch (err) {
    out.ok = false;
    out.error = String(err && err.message ? err.message : err);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
});
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'close') client.end(false, {}, () => process.exit(0));
});
