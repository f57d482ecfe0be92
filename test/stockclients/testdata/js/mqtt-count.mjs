// A late MQTT.js subscriber (QoS 1) to PREFIX/#: how many retained messages the broker hands a
// new subscription. As the broadcaster's sweep does, it then publishes to a marker topic of its
// own (again every half second: a full queue drops it too) and counts until the marker comes
// back, which the broker sends after what it queued for the subscription.
// Usage: node mqtt-count.mjs BROKER_URL PREFIX; prints {"retained": N}.
import mqtt from 'mqtt';

const [url, prefix] = process.argv.slice(2);
const client = mqtt.connect(url, { protocolVersion: 5, clean: true, clientId: `stock-counter-${process.pid}` });
const marker = `${prefix}-count/${process.pid}`;
const seen = new Set();
let repeat;
client.on('connect', () =>
  client.subscribe([`${prefix}/#`, marker], { qos: 1 }, () => {
    const ask = () => client.publish(marker, '', { qos: 1 });
    ask();
    repeat = setInterval(ask, 500);
  }),
);
client.on('message', (topic, payload, packet) => {
  if (topic === marker) {
    clearInterval(repeat);
    process.stdout.write(JSON.stringify({ retained: seen.size }) + '\n');
    client.end(false, {}, () => process.exit(0));
    return;
  }
  if (packet.retain && payload.length > 0) seen.add(topic);
});
