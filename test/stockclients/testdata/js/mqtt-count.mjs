// A late MQTT.js subscriber (QoS 1) to PREFIX/#: how many retained messages the broker hands a
// new subscription. To know when they have all come it publishes to marker topics of its own,
// round by round (each again every half second: a full queue drops it too), until a round
// brings no new retained topic.
// Usage: node mqtt-count.mjs BROKER_URL PREFIX; prints {"retained": N, "rounds": R}.
import mqtt from 'mqtt';

const [url, prefix] = process.argv.slice(2);
const client = mqtt.connect(url, { protocolVersion: 5, clean: true, clientId: `stock-counter-${process.pid}` });
const markers = `${prefix}-count/${process.pid}/`;
const seen = new Set();
let round = 0;
let before = -1;
let repeat;
function ask() {
  clearInterval(repeat);
  const marker = markers + round;
  client.publish(marker, '', { qos: 1 });
  repeat = setInterval(() => client.publish(marker, '', { qos: 1 }), 500);
}
client.on('connect', () => client.subscribe([`${prefix}/#`, `${markers}+`], { qos: 1 }, ask));
client.on('message', (topic, payload, packet) => {
  if (topic.startsWith(markers)) {
    if (topic !== markers + round) return; // a late copy of an earlier round's marker
    if (seen.size === before) {
      clearInterval(repeat);
      process.stdout.write(JSON.stringify({ retained: seen.size, rounds: round + 1 }) + '\n');
      client.end(false, {}, () => process.exit(0));
      return;
    }
    before = seen.size;
    round++;
    ask();
    return;
  }
  if (packet.retain && payload.length > 0) seen.add(topic);
});
