// A stock EventSource (the npm eventsource package, WHATWG) on GET /v1/watch, with no reconnect
// code of its own: it keeps the mesh from `snapshot` and `delta` events and nothing else.
// Usage: node eventsource.mjs BASE_URL. Prints one JSON line per event and connection change;
// on the line "dump" on stdin prints {"dump": {"<kind>|<key>": entity}}.
import { EventSource } from 'eventsource';
import * as readline from 'node:readline';

const base = process.argv[2];
const lists = { brokers: 'broker', eventTypes: 'eventtype', sources: 'source', subscribables: 'subscribable' };
const keyOf = {
  brokers: (e) => `eventing.knative.dev/Broker/${e.namespace}/${e.name}`,
  eventTypes: (e) => `eventing.knative.dev/EventType/${e.namespace}/${e.name}`,
  sources: (e) => `${e.group}/${e.kind}/${e.namespace}/${e.name}`,
  subscribables: (e) => `${e.group}/${e.kind}/${e.namespace}/${e.name}`,
};
let entities = new Map();
let epoch = '';
let sequence = 0;
let opens = 0;
let errors = 0;
let busy = 0;

function say(what, extra = {}) {
  process.stdout.write(JSON.stringify({ what, epoch, sequence, entities: entities.size, opens, errors, busy, ...extra }) + '\n');
}

const es = new EventSource(`${base}/v1/watch`);
es.addEventListener('open', () => { opens++; say('open'); });
es.addEventListener('error', (e) => { errors++; say('error', { message: String(e && e.message), readyState: es.readyState }); });
es.addEventListener('snapshot', (ev) => {
  const s = JSON.parse(ev.data);
  entities = new Map();
  for (const [list, kind] of Object.entries(lists)) {
    for (const e of s.mesh[list]) entities.set(`${kind}|${keyOf[list](e)}`, e);
  }
  epoch = s.epoch;
  sequence = s.sequence;
  say('snapshot', { id: ev.lastEventId });
});
es.addEventListener('delta', (ev) => {
  const d = JSON.parse(ev.data).data;
  if (d.op === 'deleted') entities.delete(`${d.kind}|${d.key}`);
  else entities.set(`${d.kind}|${d.key}`, d.entity);
  epoch = d.epoch;
  sequence = d.sequence;
  say('delta', { id: ev.lastEventId });
});
// Only heard, to report it: the EventSource comes back by itself after the `retry:` delay.
es.addEventListener('busy', (ev) => { busy++; say('busy', { data: ev.data }); });
for (const end of ['shutdown', 'cutoff']) es.addEventListener(end, () => say(end));

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'dump') process.stdout.write(JSON.stringify({ what: 'dump', epoch, sequence, opens, errors, busy, dump: Object.fromEntries(entities) }) + '\n');
  if (line === 'close') { es.close(); process.exit(0); }
});
