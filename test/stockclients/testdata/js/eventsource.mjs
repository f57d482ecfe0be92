// A stock EventSource (the npm eventsource package, WHATWG) on GET /v1/watch, with no reconnect
// code of its own: it keeps the mesh from `snapshot` and `delta` events and nothing else, every
// list of it, as a consumer of this version of docs/protocol.md does.
// Usage: node eventsource.mjs BASE_URL. Prints {"what":"kinds"} with its kind table first, then
// one JSON line per event and connection change; on the line "dump" on stdin prints
// {"dump": {"<kind>|<key>": entity}}.
import { EventSource } from 'eventsource';
import * as readline from 'node:readline';

const base = process.argv[2];
// The entity kinds of this version: the event kind name of a delta → the snapshot's list
// (docs/protocol.md, the key table and "The whole mesh").
const lists = {
  broker: 'brokers', eventtype: 'eventTypes', source: 'sources', subscribable: 'subscribables',
  trigger: 'triggers', subscription: 'subscriptions', sequence: 'sequences', parallel: 'parallels',
  eventtransform: 'eventTransforms', requestreply: 'requestReplies', eventpolicy: 'eventPolicies',
  jobsink: 'jobSinks', integrationsink: 'integrationSinks', sink: 'sinks',
};
// Brokers and EventTypes keep the upstream backend's JSON, which has no group and kind; every
// other entity names its own.
const implied = { brokers: ['eventing.knative.dev', 'Broker'], eventTypes: ['eventing.knative.dev', 'EventType'] };
const keyOf = (list, e) => {
  const [group, kind] = implied[list] ?? [e.group, e.kind];
  return `${group}/${kind}/${e.namespace}/${e.name}`;
};
let entities = new Map();
let epoch = '';
let sequence = 0;
let opens = 0;
let errors = 0;
let busy = 0;
let skipped = 0; // entities and deltas of kinds this version does not know

function say(what, extra = {}) {
  process.stdout.write(JSON.stringify({ what, epoch, sequence, entities: entities.size, opens, errors, busy, skipped, ...extra }) + '\n');
}
say('kinds', { kinds: lists });

const es = new EventSource(`${base}/v1/watch`);
es.addEventListener('open', () => { opens++; say('open'); });
es.addEventListener('error', (e) => { errors++; say('error', { message: String(e && e.message), readyState: es.readyState }); });
es.addEventListener('snapshot', (ev) => {
  const s = JSON.parse(ev.data);
  const known = new Map(Object.entries(lists).map(([kind, list]) => [list, kind]));
  entities = new Map();
  for (const [list, members] of Object.entries(s.mesh)) {
    const kind = known.get(list);
    if (kind === undefined) { skipped += members.length; continue; }
    for (const e of members) entities.set(`${kind}|${keyOf(list, e)}`, e);
  }
  epoch = s.epoch;
  sequence = s.sequence;
  say('snapshot', { id: ev.lastEventId });
});
es.addEventListener('delta', (ev) => {
  const d = JSON.parse(ev.data).data;
  // A new epoch mid-stream brings its whole mesh as deltas from its first one.
  if (d.epoch !== epoch) entities = new Map();
  if (!Object.hasOwn(lists, d.kind)) skipped++;
  else if (d.op === 'deleted') entities.delete(`${d.kind}|${d.key}`);
  else entities.set(`${d.kind}|${d.key}`, d.entity);
  epoch = d.epoch;
  sequence = d.sequence;
  say('delta', { id: ev.lastEventId });
});
// Only heard, to report it: the EventSource comes back by itself after the `retry:` delay.
es.addEventListener('busy', (ev) => { busy++; say('busy', { data: ev.data }); });
for (const end of ['shutdown', 'cutoff']) es.addEventListener(end, () => say(end));

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'dump') process.stdout.write(JSON.stringify({ what: 'dump', epoch, sequence, opens, errors, busy, skipped, dump: Object.fromEntries(entities) }) + '\n');
  if (line === 'close') { es.close(); process.exit(0); }
});
