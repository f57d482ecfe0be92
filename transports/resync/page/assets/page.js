'use strict';
// The live picture of the event mesh. It keeps a replica of the mesh by the resync algorithm
// of docs/protocol.md (a snapshot from GET /v1/getEventMesh, then GET /v1/watch resumed from
// it; a new epoch, a gap that GET /v1/deltas cannot fill, a 410 or an `access` event mean a
// new snapshot) and draws the graph of mesh/graph: per namespace, sources → Brokers and
// channels → EventTypes → Backstage consumers. fetch streams rather than EventSource, so the
// bearer token can go in the Authorization header.
//
// Served with a list of clusters (`broadcaster page`, transports/resync/page/fleet), it is a
// merged view: one replica per cluster, each followed on its own from clusters/<name>/v1/...
// (its own epoch, sequence, reconnects and resyncs), its namespaces drawn as sections of
// their own ("east · shop") whose node ids carry the cluster ("east/broker:KEY"), and lineage
// questions asked of the cluster of the entity picked. Without a list it follows v1/... and
// draws exactly as a single broadcaster's page.
(() => {
  const TOKEN_KEY = 'event-mesh-broadcaster-token';
  const COLUMN_LIMIT = 150; // nodes drawn per column of a namespace before "show more"
  const OPEN_LIMIT = 400; // namespaces open by themselves while the nodes to draw stay under this
  const $ = (id) => document.getElementById(id);

  // ---- The replicas ----

  // The clusters of a merged view ([] on a broadcaster's own page): a data block, not run.
  const clusters = JSON.parse(document.getElementById('clusters').textContent);
  const fleet = clusters.length > 0;
  // Page-wide counters; on a broadcaster's own page its one replica counts here too.
  const stats = { snapshots: 0, resyncs: 0, catchUps: 0, deltas: 0, connects: 0, renders: 0, lastRenderMs: 0, maxRenderMs: 0, lastReason: '' };

  // A replica of one broadcaster's mesh, followed from base + 'v1/...'.
  function newReplica(cluster) {
    return {
      cluster, // '' on a broadcaster's own page
      base: cluster ? 'clusters/' + encodeURIComponent(cluster) + '/' : '',
      prefix: cluster ? cluster + '/' : '', // of its node ids: "east/broker:KEY"
      epoch: '',
      seq: 0,
      entities: new Map(), // kind + '\n' + key → entity JSON
      byNS: new Map(), // namespace → {source, broker, subscribable, eventtype: Map key → entity}
      stats: cluster ? { snapshots: 0, resyncs: 0, catchUps: 0, deltas: 0, connects: 0, lastReason: '' } : stats,
      status: { state: 'loading', text: 'connecting…' },
      statusLine: null, // its line in the list of clusters (a merged view)
      controller: null,
    };
  }
  const replicas = fleet ? clusters.map(newReplica) : [newReplica('')];
  const replicaOf = new Map(replicas.map((r) => [r.cluster, r]));
  const state = replicas[0]; // a broadcaster's own page: its one replica
  // A section is a namespace of a replica: its id is the namespace on a broadcaster's own
  // page, "CLUSTER NAMESPACE" in a merged view (neither name holds a space).
  const sectionID = (r, ns) => (r.cluster ? r.cluster + ' ' + ns : ns);
  const view = {
    search: '',
    nsFilter: '',
    hidden: new Set(), // namespaces unticked (in every cluster)
    hiddenClusters: new Set(), // clusters unticked
    userOpen: new Map(), // section → open, as the user left it
    more: new Map(), // section → nodes per column shown
    sections: new Map(), // section → {el, open, drawn, cluster, …}: what is on screen
    graphs: new Map(), // section → {g, v}: its graph and what the search keeps of it
    dirty: new Set(), // sections to draw again
    allDirty: true,
    changed: new Set(), // node ids changed since the last render (they flash)
    focus: null, // the section whose header the keyboard toggled
  };
  // The lineage asked for (GET /v1/lineage): the question, its last answer, and what of the
  // graph lies on it.
  const lineage = {
    cluster: '', // whose GET /v1/lineage is asked (a merged view: the cluster of what was picked)
    query: '', // the query string asked: "eventType=NS%2FNAME", "target=KEY" or "broken=true"; '' for none
    picked: '', // the entity key asked about
    answer: null,
    state: '', // '' (nothing asked), 'loading', 'shown', 'missing', 'error'
    why: '',
    on: null, // the entity keys on the lineage (a Set), null while nothing is shown
    pairs: new Set(), // "a\nb" for every two keys next to each other on a path, both ways
    broken: new Set(), // the keys marked broken
    problems: [], // what is broken in the mesh (GET /v1/lineage?broken), to mark the answer with
    problemsOf: new Map(), // key → its problems
    danglingRefs: new Set(), // what dangling edges name
    asks: 0, // questions sent (the last one's answer is the one shown)
    answers: 0,
    controller: null,
    timer: 0,
    first: 0,
    applied: false, // the graph carries lineage classes
  };
  window.meshPage = { state, stats, view, lineage, replicas };

  function keyOf(kind, e) {
    if (kind === 'broker') return 'eventing.knative.dev/Broker/' + e.namespace + '/' + e.name;
    if (kind === 'eventtype') return 'eventing.knative.dev/EventType/' + e.namespace + '/' + e.name;
    return e.group + '/' + e.kind + '/' + e.namespace + '/' + e.name;
  }
  // The contract's entity kinds (the broadcaster writes its table into the page). The page
  // draws the upstream model's kinds, each as the node kind its title names; the others (the
  // rest of the event graph, and kinds of a newer broadcaster) are skipped, their sequence
  // counted.
  const entityKinds = JSON.parse(document.getElementById('entity-kinds').textContent);
  const drawnKinds = entityKinds.filter((k) => k.upstream);
  const graphKind = Object.fromEntries(drawnKinds.map((k) => [k.name, k.title.toLowerCase()]));

  function bucket(r, ns) {
    let b = r.byNS.get(ns);
    if (!b) {
      b = { source: new Map(), broker: new Map(), subscribable: new Map(), eventtype: new Map() };
      r.byNS.set(ns, b);
    }
    return b;
  }

  function touch(r, e) {
    view.dirty.add(sectionID(r, e.namespace));
    for (const p of e.providedEventTypes || []) view.dirty.add(sectionID(r, p.slice(0, p.indexOf('/'))));
    if (e.reference) view.dirty.add(sectionID(r, e.reference.namespace));
  }

  function put(r, kind, key, e) {
    if (!Object.hasOwn(graphKind, kind)) return;
    const old = r.entities.get(kind + '\n' + key);
    if (old) remove(r, kind, key);
    r.entities.set(kind + '\n' + key, e);
    bucket(r, e.namespace)[kind].set(key, e);
    touch(r, e);
    view.changed.add(r.prefix + graphKind[kind] + ':' + key);
  }

  function remove(r, kind, key) {
    if (!Object.hasOwn(graphKind, kind)) return;
    const old = r.entities.get(kind + '\n' + key);
    if (!old) return;
    r.entities.delete(kind + '\n' + key);
    const b = r.byNS.get(old.namespace);
    if (b) {
      b[kind].delete(key);
      if (!b.source.size && !b.broker.size && !b.subscribable.size && !b.eventtype.size) r.byNS.delete(old.namespace);
    }
    touch(r, old);
  }

  // clear empties a replica (a new snapshot or epoch follows): every section of it is drawn again.
  function clear(r) {
    r.entities.clear();
    r.byNS.clear();
    view.allDirty = true;
  }

  function loadMesh(r, m) {
    clear(r);
    for (const { list, name: kind } of drawnKinds) {
      for (const e of m[list] || []) {
        const key = keyOf(kind, e);
        r.entities.set(kind + '\n' + key, e);
        bucket(r, e.namespace)[kind].set(key, e);
      }
    }
    lineageStale(r);
    scheduleRender();
  }

  function apply(r, d) {
    lineageStale(r); // any kind: a Trigger's filter edited changes a lineage, not the graph drawn
    if (d.op === 'deleted') remove(r, d.kind, d.key);
    else put(r, d.kind, d.key, d.entity);
    r.seq = d.sequence;
    r.stats.deltas++;
  }

  // ---- Talking to the broadcaster ----

  class Resync extends Error {} // drop the position: take a new snapshot
  class Reconnect extends Error {
    constructor(reason, wait) {
      super(reason);
      this.wait = wait;
    }
  }

  let tokenWaiters = []; // the stream and a lineage question may both wait for a token

  const sleep = (ms, signal) =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });

  // setState says how the following of replica r goes: 'loading', 'live', 'error' (retrying)
  // or 'unauthorized'. On a broadcaster's own page that is the page's state; in a merged view
  // each cluster has its status line, and the page's state sums them up.
  function setState(r, s, text) {
    const was = r.status.state;
    r.status.state = s;
    if (text !== undefined) r.status.text = text;
    if (!fleet) {
      document.body.dataset.state = s;
      if (text !== undefined) $('status').textContent = text;
      return;
    }
    if (was !== s) {
      for (const sec of view.sections.values()) if (sec.cluster === r.cluster) sec.el.classList.toggle('stale', s !== 'live');
    }
    showClusterStatus(r);
    showFleetStatus();
  }

  // showClusterStatus writes a cluster's status line: live with its size and position, or
  // what it waits for.
  function showClusterStatus(r) {
    const li = r.statusLine;
    if (!li) return;
    const s = r.status.state;
    li.dataset.state = s;
    li.querySelector('.state').textContent = s === 'live'
      ? `live · ${r.entities.size} entities · #${r.seq}`
      : s === 'error' ? 'reconnecting: ' + r.status.text : r.status.text;
    li.title = r.status.text;
  }

  // showFleetStatus sums the clusters up in the header: the page is live when every cluster is.
  function showFleetStatus() {
    const states = replicas.map((r) => r.status.state);
    const live = states.filter((s) => s === 'live').length;
    document.body.dataset.state = states.includes('unauthorized') ? 'unauthorized'
      : live === replicas.length ? 'live' : states.includes('error') ? 'error' : 'loading';
    let entities = 0;
    for (const r of replicas) entities += r.entities.size;
    const down = replicas.filter((r) => r.status.state !== 'live').map((r) => r.cluster);
    $('status').textContent = `${live} of ${plural(replicas.length, 'cluster', 'clusters')} live` +
      (down.length ? ' (' + down.join(', ') + ' reconnecting)' : '') + ` · ${entities} entities`;
  }

  function headers(extra) {
    const h = Object.assign({}, extra);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) h.Authorization = 'Bearer ' + token;
    return h;
  }

  // askToken shows the token form and resolves when one is given.
  function askToken(r, why) {
    setState(r, 'unauthorized', why);
    $('login-why').textContent = why;
    $('login').hidden = false;
    $('token').focus();
    return new Promise((resolve) => { tokenWaiters.push(resolve); });
  }

  async function problem(r) {
    try {
      return (await r.json()).error || '';
    } catch {
      return '';
    }
  }

  // request GETs path of replica rep's broadcaster, asking for a token on 401 and 403 and
  // waiting out 503 and 429. Paths are relative to the page, so a broadcaster behind a proxy's
  // path prefix works too.
  async function request(rep, path, extra, signal) {
    for (;;) {
      const r = await fetch(rep.base + path, { headers: headers(extra), signal, cache: 'no-store' });
      if (r.status === 401 || r.status === 403) {
        const had = !!sessionStorage.getItem(TOKEN_KEY);
        const why = await problem(r);
        const who = rep.cluster ? 'The broadcaster of ' + rep.cluster : 'The broadcaster';
        await askToken(rep, r.status === 403 ? 'This token may see no namespace of the mesh' + (rep.cluster ? ' of ' + rep.cluster : '') + ' (403). Give another.'
          : had ? who + ' refused the token (401)' + (why ? ': ' + why : '') + '.' : who + ' wants a bearer token.');
        continue;
      }
      if (r.status === 503 || r.status === 429) {
        const wait = Number(r.headers.get('Retry-After')) || 1;
        setState(rep, 'loading', 'the broadcaster is not ready (' + r.status + '); asking again in ' + wait + ' s');
        if (r.body) r.body.cancel();
        await sleep(wait * 1000, signal);
        if (signal.aborted) throw new DOMException('aborted', 'AbortError');
        continue;
      }
      return r;
    }
  }

  async function loadSnapshot(rep, signal) {
    const r = await request(rep, 'v1/getEventMesh', { Accept: 'application/json' }, signal);
    if (r.status === 410) throw new Resync('410 from /v1/getEventMesh');
    if (!r.ok) throw new Error('GET /v1/getEventMesh answered ' + r.status + ' ' + (await problem(r)));
    const m = await r.json();
    rep.epoch = r.headers.get('Mesh-Epoch') || '';
    rep.seq = Number(r.headers.get('Mesh-Sequence') || 0);
    rep.stats.snapshots++;
    loadMesh(rep, m);
  }

  // catchUp fills a gap before sequence upTo from GET /v1/deltas; anything else than a 200
  // (a 410 when the log no longer holds it) means a new snapshot.
  async function catchUp(rep, upTo, signal) {
    const q = '?epoch=' + encodeURIComponent(rep.epoch) + '&since=' + rep.seq;
    const r = await request(rep, 'v1/deltas' + q, { Accept: 'application/cloudevents-batch+json' }, signal);
    if (!r.ok) throw new Resync('GET /v1/deltas answered ' + r.status);
    rep.stats.catchUps++;
    for (const ce of await r.json()) {
      const d = ce.data;
      if (d.epoch !== rep.epoch || d.sequence !== rep.seq + 1 || d.sequence >= upTo) break;
      apply(rep, d);
    }
  }

  async function onDelta(rep, ce, signal) {
    const d = ce.data;
    if (d.epoch !== rep.epoch) {
      if (d.sequence !== 1) throw new Resync('a delta of another epoch');
      // A new epoch opens with the whole mesh from meshseq 1: rebuild from the stream.
      clear(rep);
      rep.epoch = d.epoch;
      rep.seq = 0;
    }
    if (d.sequence <= rep.seq) return; // a duplicate, or already in the snapshot
    if (d.sequence > rep.seq + 1) {
      await catchUp(rep, d.sequence, signal);
      if (d.sequence !== rep.seq + 1) throw new Resync('a gap GET /v1/deltas did not fill');
    }
    apply(rep, d);
  }

  async function onEvent(rep, ev, signal) {
    switch (ev.type) {
      case 'snapshot': {
        const s = JSON.parse(ev.data);
        rep.epoch = s.epoch;
        rep.seq = s.sequence;
        rep.stats.snapshots++;
        loadMesh(rep, s.mesh);
        break;
      }
      case 'delta':
        await onDelta(rep, JSON.parse(ev.data), signal);
        break;
      case 'position': {
        const p = JSON.parse(ev.data);
        if (p.epoch === rep.epoch && p.sequence > rep.seq) {
          rep.seq = p.sequence;
          lineageStale(rep); // a change elsewhere may cut or open a path through a hidden namespace
        }
        break;
      }
      case 'access': // the caller's view changed: start over without Last-Event-ID
        throw new Resync('access');
      case 'cutoff':
        throw new Reconnect('cut off (fell behind)', 0);
      case 'shutdown':
        throw new Reconnect('the broadcaster stopped', 1000);
      case 'busy': // too many streams (only without status codes): come back later
        throw new Reconnect('the broadcaster serves as many streams as it may', 5000);
    }
    scheduleRender();
  }

  // readSSE calls fn for each event of a text/event-stream body, in order.
  async function readSSE(body, fn) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let from = 0;
    let type = '';
    let id = '';
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let i;
      while ((i = buf.indexOf('\n', from)) >= 0) {
        let line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        from = 0;
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length) await fn({ type: type || 'message', id, data: data.join('\n') });
          type = '';
          id = '';
          data = [];
          continue;
        }
        if (line[0] === ':') continue;
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        let v = c < 0 ? '' : line.slice(c + 1);
        if (v[0] === ' ') v = v.slice(1);
        if (field === 'event') type = v;
        else if (field === 'id') id = v;
        else if (field === 'data') data.push(v);
      }
      from = buf.length; // a long line (a snapshot) is scanned once
    }
  }

  async function watch(rep, signal) {
    const q = '?epoch=' + encodeURIComponent(rep.epoch);
    // The id names the epoch ("<epoch>-<sequence>"); application/json asks for status codes
    // (503 while loading or beyond the caps) rather than a held or `busy` stream.
    const headers = { Accept: 'text/event-stream, application/json', 'Last-Event-ID': rep.epoch + '-' + rep.seq };
    const r = await request(rep, 'v1/watch' + q, headers, signal);
    if (r.status === 410) throw new Resync('410 from /v1/watch');
    if (!r.ok) throw new Error('GET /v1/watch answered ' + r.status + ' ' + (await problem(r)));
    rep.stats.connects++;
    setState(rep, 'live');
    scheduleRender();
    await readSSE(r.body, (ev) => onEvent(rep, ev, signal));
  }

  // follow keeps replica rep by the resync algorithm, for as long as the page is open; each
  // replica of a merged view has its own loop, so one broadcaster down stops no other.
  async function follow(rep) {
    let failures = 0;
    for (;;) {
      rep.controller = new AbortController();
      const signal = rep.controller.signal;
      try {
        if (!rep.epoch) {
          setState(rep, 'loading', 'loading the mesh…');
          await loadSnapshot(rep, signal);
        }
        await watch(rep, signal);
        failures = 0; // ended cleanly: reconnect at once, resuming
      } catch (e) {
        if (e instanceof Resync) {
          rep.stats.resyncs++;
          rep.stats.lastReason = e.message;
          rep.epoch = '';
          rep.seq = 0;
          continue;
        }
        if (e instanceof Reconnect) {
          rep.stats.lastReason = e.message;
          setState(rep, 'loading', e.message + '; reconnecting');
          await sleep(e.wait);
          continue;
        }
        if (signal.aborted) continue; // a restart asked for (a token forgotten)
        failures++;
        rep.stats.lastReason = String(e && e.message ? e.message : e);
        setState(rep, 'error', rep.stats.lastReason + ' (retrying)');
        const backoff = Math.min(5000, 100 * 2 ** failures);
        await sleep(backoff / 2 + Math.random() * backoff / 2);
      } finally {
        rep.controller.abort(); // a stream left behind (a resync) is closed, not leaked
      }
    }
  }

  // ---- The graph of a namespace (the rules of mesh/graph.Build) ----

  // A node's id is its kind and key ("broker:KEY"), after its cluster in a merged view
  // ("east/broker:KEY"): the same object in two clusters is two boxes.
  function nodeOf(r, kind, ns, key, name, detail) {
    return { id: r.prefix + kind + ':' + key, kind, ns, name, detail: detail || '', text: (name + ' ' + (detail || '') + ' ' + ns).toLowerCase() };
  }

  // keyOfID and kindOfID read a node id; neither a cluster nor a kind holds ':'.
  const keyOfID = (id) => id.slice(id.indexOf(':') + 1);
  function kindOfID(id) {
    const head = id.slice(0, id.indexOf(':'));
    return head.slice(head.indexOf('/') + 1);
  }

  function eventTypeKey(nsName) {
    const i = nsName.indexOf('/');
    return 'eventing.knative.dev/EventType/' + nsName.slice(0, i) + '/' + nsName.slice(i + 1);
  }

  function sectionGraph(r, ns) {
    const b = r.byNS.get(ns);
    const node = (...args) => nodeOf(r, ...args);
    const nodes = new Map();
    const edges = [];
    const add = (n) => { if (!nodes.has(n.id)) nodes.set(n.id, n); return nodes.get(n.id); };
    const provides = (from, provided) => {
      for (const p of provided || []) {
        if (p.slice(0, p.indexOf('/')) !== ns) continue; // drawn in that namespace
        const to = r.prefix + 'eventtype:' + eventTypeKey(p);
        if (b.eventtype.has(eventTypeKey(p))) edges.push({ from, to, kind: 'provides' });
      }
    };
    for (const [key, e] of b.eventtype) add(node('eventtype', ns, key, e.name, e.type));
    for (const [key, e] of b.broker) provides(add(node('broker', ns, key, e.name)).id, e.providedEventTypes);
    for (const [key, e] of b.subscribable) provides(add(node('channel', ns, key, e.name, e.kind)).id, e.providedEventTypes);
    for (const [key, e] of b.source) provides(add(node('source', ns, key, e.name, e.kind)).id, e.providedEventTypes);
    for (const [key, e] of b.source) {
      if (!e.sink) continue;
      const k = e.sink.group + '/' + e.sink.kind + '/' + e.sink.namespace + '/' + e.sink.name;
      for (const [kind, entityKind] of [['broker', 'broker'], ['channel', 'subscribable']]) {
        const target = r.entities.get(entityKind + '\n' + k);
        if (!target) continue;
        const n = add(node(kind, target.namespace, k, target.name, kind === 'channel' ? target.kind : ''));
        if (target.namespace !== ns) n.foreign = true; // a sink in another namespace, drawn here too
        edges.push({ from: r.prefix + 'source:' + key, to: n.id, kind: 'sink' });
      }
    }
    for (const [key, e] of b.eventtype) {
      const ref = e.reference;
      if (ref && ref.namespace !== ns) { // a provider in another namespace, drawn here too
        const k = ref.group + '/' + ref.kind + '/' + ref.namespace + '/' + ref.name;
        const nsName = ns + '/' + e.name;
        const broker = r.entities.get('broker\n' + k);
        const channel = r.entities.get('subscribable\n' + k);
        for (const [p, kind] of [[broker, 'broker'], [channel, 'channel']]) {
          if (p && (p.providedEventTypes || []).includes(nsName)) {
            const n = add(node(kind, ref.namespace, k, p.name, p.kind));
            n.foreign = true;
            edges.push({ from: n.id, to: r.prefix + 'eventtype:' + key, kind: 'provides' });
          }
        }
      }
      for (const c of e.consumedBy || []) {
        add(node('consumer', '', c, c));
        edges.push({ from: r.prefix + 'eventtype:' + key, to: r.prefix + 'consumer:' + c, kind: 'consumes' });
      }
    }
    return { nodes, edges };
  }

  const columnOf = { source: 0, broker: 1, channel: 1, eventtype: 2, consumer: 3 };

  // visible filters a namespace's graph by the search (a match, with the EventTypes it touches
  // and their neighbours) and orders each column so that edges cross little.
  function visible(g, q) {
    let keep;
    const matched = new Set();
    if (!q) keep = new Set(g.nodes.keys());
    else {
      keep = new Set();
      for (const n of g.nodes.values()) if (n.text.includes(q)) { matched.add(n.id); keep.add(n.id); }
      const touched = new Set();
      const isEventType = (id) => g.nodes.get(id).kind === 'eventtype';
      for (const e of g.edges) {
        if (matched.has(e.from) && isEventType(e.to)) touched.add(e.to);
        if (matched.has(e.to) && isEventType(e.from)) touched.add(e.from);
        if (matched.has(e.from) && e.kind === 'sink') keep.add(e.to);
      }
      for (const id of matched) if (isEventType(id)) touched.add(id);
      for (const e of g.edges) if (touched.has(e.from) || touched.has(e.to)) { keep.add(e.from); keep.add(e.to); }
    }
    const cols = [[], [], [], []];
    for (const id of keep) { const n = g.nodes.get(id); cols[columnOf[n.kind]].push(n); }
    const byName = (a, b) => (a.foreign === b.foreign ? 0 : a.foreign ? 1 : -1) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id);
    cols[1].sort(byName);
    const rank = new Map(cols[1].map((n, i) => [n.id, i]));
    const firstProvider = new Map();
    for (const e of g.edges) {
      if (e.kind === 'provides' && rank.has(e.from)) firstProvider.set(e.to, Math.min(firstProvider.get(e.to) ?? Infinity, rank.get(e.from)));
    }
    cols[2].sort((a, b) => (firstProvider.get(a.id) ?? Infinity) - (firstProvider.get(b.id) ?? Infinity) || byName(a, b));
    cols[2].forEach((n, i) => rank.set(n.id, cols[1].length + i));
    const mean = new Map();
    for (const e of g.edges) {
      const [self, other] = e.kind === 'consumes' ? [e.to, e.from] : [e.from, e.to];
      if (!rank.has(other)) continue;
      const m = mean.get(self) || { sum: 0, n: 0 };
      m.sum += rank.get(other);
      m.n++;
      mean.set(self, m);
    }
    const avg = (n) => { const m = mean.get(n.id); return m ? m.sum / m.n : Infinity; };
    cols[0].sort((a, b) => avg(a) - avg(b) || byName(a, b));
    cols[3].sort((a, b) => avg(a) - avg(b) || byName(a, b));
    return { cols, matched, keep };
  }

  // ---- Drawing ----

  let renderPending = false;
  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    const go = () => { if (renderPending) { renderPending = false; render(); } };
    requestAnimationFrame(go);
    setTimeout(go, 100); // rAF does not run in a hidden tab
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  const plural = (n, one, many) => n + ' ' + (n === 1 ? one : many);

  function summary(g) {
    const c = { source: 0, broker: 0, channel: 0, eventtype: 0, consumer: 0 };
    for (const n of g.nodes.values()) if (!n.foreign) c[n.kind]++;
    return [plural(c.source, 'source', 'sources'), plural(c.broker, 'broker', 'brokers'), plural(c.channel, 'channel', 'channels'),
      plural(c.eventtype, 'event type', 'event types'), plural(c.consumer, 'consumer', 'consumers')].filter((s) => !s.startsWith('0 ')).join(' · ');
  }

  const titles = ['Sources', 'Brokers & channels', 'Event types', 'Consumers'];

  function buildSection({ sid, r, ns, g, v }, open) {
    const sec = el('section', 'ns' + (open ? ' open' : ''));
    sec.dataset.ns = ns;
    const h = el('h2');
    if (r.cluster) {
      sec.dataset.cluster = r.cluster;
      if (r.status.state !== 'live') sec.classList.add('stale');
      h.append(el('span', 'cluster', r.cluster), el('span', 'sep', '·'));
    }
    h.append(el('span', 'name', ns), el('span', 'summary', summary(g) + (view.search ? ' — ' + v.keep.size + ' shown' : '')));
    h.tabIndex = 0; // a button for keyboards and screen readers too
    h.setAttribute('role', 'button');
    h.setAttribute('aria-expanded', String(open));
    const toggle = () => {
      view.focus = sid; // the header is drawn again: keep the keyboard on it
      view.userOpen.set(sid, !open);
      view.dirty.add(sid);
      scheduleRender();
    };
    h.addEventListener('click', toggle);
    h.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        toggle();
      }
    });
    sec.append(h);
    if (!open) return { el: sec, drawn: null, cluster: r.cluster };
    const body = el('div', 'body');
    const limit = view.more.get(sid) || COLUMN_LIMIT;
    const drawn = new Map();
    v.cols.forEach((col, i) => {
      const c = el('div', 'col');
      c.append(el('h3', '', titles[i]));
      for (const n of col.slice(0, limit)) {
        const d = el('div', 'node kind-' + n.kind + (v.matched.has(n.id) ? ' match' : '') + (view.changed.has(n.id) ? ' changed' : ''));
        d.dataset.id = n.id;
        d.title = n.id;
        if (n.foreign) d.append(el('span', 'ns-tag', n.ns + '/'));
        d.append(el('span', 'label', n.name));
        if (n.detail) d.append(el('span', 'detail', n.detail));
        c.append(d);
        drawn.set(n.id, d);
      }
      if (col.length > limit) {
        const more = el('button', 'more', 'show ' + Math.min(col.length - limit, limit) + ' more of ' + (col.length - limit));
        more.type = 'button';
        more.addEventListener('click', () => {
          view.more.set(sid, limit * 2);
          view.dirty.add(sid);
          scheduleRender();
        });
        c.append(more);
      }
      body.append(c);
    });
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('class', 'edges');
    body.prepend(svg);
    sec.append(body);
    const edges = g.edges.filter((e) => drawn.has(e.from) && drawn.has(e.to));
    return { el: sec, drawn, svg, body, edges, cluster: r.cluster };
  }

  // drawEdges draws a built section's edges once it is laid out.
  function drawEdges(s) {
    if (!s.drawn) return;
    const base = s.body.getBoundingClientRect();
    const box = new Map();
    for (const [id, d] of s.drawn) box.set(id, d.getBoundingClientRect());
    const paths = [];
    for (const e of s.edges) {
      const a = box.get(e.from);
      const b = box.get(e.to);
      const x1 = a.right - base.left;
      const y1 = a.top + a.height / 2 - base.top;
      const x2 = b.left - base.left;
      const y2 = b.top + b.height / 2 - base.top;
      const dx = Math.max(24, (x2 - x1) / 2);
      const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
      p.setAttribute('d', `M${x1.toFixed(1)},${y1.toFixed(1)} C${(x1 + dx).toFixed(1)},${y1.toFixed(1)} ${(x2 - dx).toFixed(1)},${y2.toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`);
      p.dataset.from = e.from;
      p.dataset.to = e.to;
      p.dataset.kind = e.kind;
      if (kindOfID(e.from) === 'source') p.classList.add('from-source');
      paths.push(p);
    }
    s.svg.replaceChildren(...paths);
  }

  // renderNamespaceList lists the namespaces of every cluster shown, each once, with how many
  // entities it holds in all of them.
  function renderNamespaceList(namespaces, shownReplicas) {
    const list = $('ns-list');
    const f = view.nsFilter;
    const items = [];
    for (const ns of namespaces) {
      if (f && !ns.toLowerCase().includes(f)) continue;
      let count = 0;
      for (const r of shownReplicas) {
        const b = r.byNS.get(ns);
        if (b) count += b.source.size + b.broker.size + b.subscribable.size + b.eventtype.size;
      }
      const li = el('li');
      const label = el('label');
      const box = el('input');
      box.type = 'checkbox';
      box.checked = !view.hidden.has(ns);
      box.dataset.ns = ns;
      label.append(box, el('span', 'name', ns), el('span', 'count', String(count)));
      li.append(label);
      items.push(li);
    }
    list.replaceChildren(...items);
  }

  function render() {
    const t0 = performance.now();
    const shownReplicas = replicas.filter((r) => !view.hiddenClusters.has(r.cluster));
    const names = new Set();
    for (const r of replicas) for (const ns of r.byNS.keys()) names.add(ns);
    const namespaces = [...names].sort();
    const q = view.search;
    const all = view.allDirty;
    renderNamespaceList(namespaces, shownReplicas);
    // The shown sections: by cluster (in the order given), then namespace.
    const shown = [];
    for (const r of shownReplicas) {
      for (const ns of [...r.byNS.keys()].sort()) if (!view.hidden.has(ns)) shown.push({ sid: sectionID(r, ns), r, ns });
    }
    // Graphs of the shown sections: each is small, so all are filtered to decide what opens.
    const parts = [];
    let total = 0;
    const graphs = new Map();
    for (const { sid, r, ns } of shown) {
      let part = view.graphs.get(sid);
      if (all || !part || view.dirty.has(sid)) { // only what changed is built again
        const g = sectionGraph(r, ns);
        part = { sid, r, ns, g, v: visible(g, q) };
      }
      graphs.set(sid, part);
      if (q && part.v.keep.size === 0) continue;
      parts.push(part);
      total += part.v.keep.size;
    }
    view.graphs = graphs;
    const autoOpen = parts.length === 1 || total <= OPEN_LIMIT;
    const main = $('graph');
    const children = [];
    const built = [];
    const sections = new Map();
    for (const part of parts) {
      const sid = part.sid;
      const open = view.userOpen.has(sid) ? view.userOpen.get(sid) : autoOpen;
      let s = view.sections.get(sid);
      if (all || !s || s.open !== open || view.dirty.has(sid)) {
        s = buildSection(part, open);
        s.open = open;
        built.push(s);
      }
      sections.set(sid, s);
      children.push(s.el);
    }
    if (!children.length) {
      const why = !replicas.some((r) => r.epoch) ? 'Loading…' : !namespaces.length ? 'The mesh is empty.'
        : !shownReplicas.length ? 'No cluster selected.' : !shown.length ? 'No namespace selected.' : 'Nothing matches “' + q + '”.';
      children.push(el('p', 'empty', why));
    }
    main.replaceChildren(...children);
    for (const s of built) drawEdges(s);
    applyLineage();
    if (view.focus !== null) {
      const h = sections.get(view.focus);
      if (h) h.el.querySelector('h2').focus();
      view.focus = null;
    }
    view.sections = sections;
    view.dirty.clear();
    view.allDirty = false;
    view.changed.clear();
    stats.renders++;
    stats.lastRenderMs = Math.round(performance.now() - t0);
    stats.maxRenderMs = Math.max(stats.maxRenderMs, stats.lastRenderMs);
    if (fleet) {
      let entities = 0;
      for (const r of replicas) {
        entities += r.entities.size;
        showClusterStatus(r);
      }
      document.body.dataset.entities = String(entities);
      showFleetStatus();
    } else {
      document.body.dataset.epoch = state.epoch;
      document.body.dataset.seq = String(state.seq);
      document.body.dataset.entities = String(state.entities.size);
    }
    if (!fleet && document.body.dataset.state === 'live') {
      let drawn = 0;
      for (const s of sections.values()) drawn += s.drawn ? s.drawn.size : 0;
      const found = q ? ` · ${total} match “${q}”` : '';
      $('status').textContent = `live · ${state.entities.size} entities in ${namespaces.length} namespaces${found} · ${drawn} drawn · epoch ${state.epoch.slice(0, 8)} · #${state.seq}`;
    }
    $('forget').hidden = !sessionStorage.getItem(TOKEN_KEY);
  }

  function redrawAll() {
    for (const s of view.sections.values()) drawEdges(s);
    applyLineage();
  }

  // ---- Lineage (GET /v1/lineage) ----
  // A question picked (where an EventType's events go, who sends to an entity and who may, or
  // what is broken) is asked again after every batch of changes the watch stream brings, so
  // the panel and the highlight follow edits. Every name in an answer is the mesh's: it is
  // drawn as text, never as markup.

  const LINEAGE_QUIET = 100; // ms without a change before asking again
  const LINEAGE_MAX_WAIT = 250; // ms at most from a change to asking again, while changes go on

  // splitKey reads an entity key: GROUP/Kind/NAMESPACE/NAME (the core group is empty).
  function splitKey(key) {
    const p = key.split('/');
    return p.length === 4 ? { group: p[0], kind: p[1], ns: p[2], name: p[3] } : null;
  }

  function describe(key) {
    const k = splitKey(key);
    return k ? k.kind + ' ' + k.ns + '/' + k.name : key;
  }

  const isKey = (s) => !!s && !s.includes('://');

  // questionFor is the query asking about an entity: where an EventType's events go, else who
  // sends to it.
  function questionFor(key) {
    const k = splitKey(key);
    if (k && k.group === 'eventing.knative.dev' && k.kind === 'EventType') return new URLSearchParams({ eventType: k.ns + '/' + k.name }).toString();
    return new URLSearchParams({ target: key }).toString();
  }

  // pick asks query (about entity key, if any) of cluster's broadcaster ('' on a broadcaster's
  // own page); an empty query closes the panel.
  function pick(query, key, cluster) {
    clearTimeout(lineage.timer);
    lineage.timer = 0;
    if (lineage.controller) lineage.controller.abort();
    lineage.controller = null;
    lineage.asks++; // an answer still on its way is for the previous question
    lineage.query = query;
    lineage.cluster = query ? cluster || '' : '';
    lineage.picked = query ? key || '' : '';
    lineage.answer = null;
    lineage.problems = [];
    lineage.state = query ? 'loading' : '';
    lineage.why = '';
    indexLineage();
    showLineage();
    applyLineage();
    if (query) askLineage();
  }

  // lineageStale asks the question again once changes of replica r pause (LINEAGE_QUIET), or
  // at the latest LINEAGE_MAX_WAIT after the first of them; changes of other clusters leave it.
  function lineageStale(r) {
    if (!lineage.query || r.cluster !== lineage.cluster) return;
    const now = performance.now();
    if (lineage.timer) clearTimeout(lineage.timer);
    else lineage.first = now;
    const wait = Math.max(0, Math.min(LINEAGE_QUIET, lineage.first + LINEAGE_MAX_WAIT - now));
    lineage.timer = setTimeout(() => {
      lineage.timer = 0;
      askLineage();
    }, wait);
  }

  // The broken routes, asked beside every other question to mark what of its answer is broken
  // (a dead-letter sink that does not exist, an object not ready, a sender not admitted).
  const BROKEN_QUERY = 'broken=true&limit=1000'; // the first 1,000: marks, not the whole list

  async function ask(query, signal) {
    const rep = replicaOf.get(lineage.cluster);
    if (!rep) return { answer: null, state: 'error', why: 'no cluster ' + lineage.cluster };
    const r = await request(rep, 'v1/lineage?' + query, { Accept: 'application/json' }, signal);
    if (r.ok) return { answer: await r.json(), state: 'shown', why: '' };
    const said = await problem(r);
    if (r.status === 404) return { answer: null, state: 'missing', why: said };
    return { answer: null, state: 'error', why: r.status + (said ? ': ' + said : '') };
  }

  async function askLineage() {
    if (lineage.controller) lineage.controller.abort();
    const controller = new AbortController();
    lineage.controller = controller;
    const n = ++lineage.asks;
    const brokenView = lineage.query.startsWith('broken');
    let got;
    let broken = null;
    try {
      const asked = [ask(lineage.query, controller.signal)];
      if (!brokenView) asked.push(ask(BROKEN_QUERY, controller.signal).catch(() => null)); // only marks: never fatal
      const [main, b] = await Promise.all(asked);
      got = main;
      broken = b ? b.answer : null;
    } catch (e) {
      if (controller.signal.aborted) return;
      got = { answer: null, state: 'error', why: String(e && e.message ? e.message : e) };
    }
    if (n !== lineage.asks) return; // a newer question was asked meanwhile
    lineage.controller = null;
    lineage.answer = got.answer;
    lineage.state = got.state;
    lineage.why = got.why;
    lineage.problems = brokenView ? (got.answer && got.answer.broken) || [] : (broken && broken.broken) || [];
    lineage.answers++;
    indexLineage();
    showLineage();
    applyLineage();
  }

  // indexLineage finds what of the graph lies on the answer: every hop's key, every
  // dead-letter sink that is an object, the producers and the target; and, as edges, every two
  // keys next to each other on a path, and each producer with its EventType. Keys marked
  // broken: a dangling or not ready hop, the objects of the problems listed.
  function indexLineage() {
    const a = lineage.answer;
    lineage.on = null;
    lineage.pairs = new Set();
    lineage.broken = new Set();
    lineage.problemsOf = new Map();
    lineage.danglingRefs = new Set();
    for (const p of lineage.problems) {
      if (!lineage.problemsOf.has(p.key)) lineage.problemsOf.set(p.key, []);
      lineage.problemsOf.get(p.key).push(p);
      if (p.problem === 'dangling' && p.ref) lineage.danglingRefs.add(p.ref);
    }
    if (!a) return;
    const on = new Set();
    const pair = (x, y) => {
      lineage.pairs.add(x + '\n' + y);
      lineage.pairs.add(y + '\n' + x);
    };
    for (const p of a.paths || []) {
      let prev = '';
      for (const h of p.hops || []) {
        if (h.key) {
          on.add(h.key);
          if (prev) pair(prev, h.key);
          if (h.dangling || h.ready) lineage.broken.add(h.key);
        }
        if (isKey(h.deadLetterSink)) on.add(h.deadLetterSink);
        prev = h.key || '';
      }
    }
    const q = a.query || {};
    if (q.eventType) {
      const et = 'eventing.knative.dev/EventType/' + q.eventType;
      on.add(et);
      for (const k of a.producers || []) {
        on.add(k);
        pair(k, et);
      }
    }
    if (q.target) on.add(q.target);
    for (const p of a.broken || []) on.add(p.key);
    for (const k of on) if (lineage.problemsOf.has(k)) lineage.broken.add(k);
    lineage.on = on;
  }

  // applyLineage marks the graph: what lies on the lineage highlighted (in a merged view, in
  // the sections of the cluster asked only), the rest dimmed.
  function applyLineage() {
    const on = lineage.on;
    document.body.classList.toggle('lineage-active', !!on);
    if (!on && !lineage.applied) return; // nothing to clear
    lineage.applied = !!on;
    for (const s of view.sections.values()) {
      if (!s.drawn) continue;
      const mine = !!on && s.cluster === lineage.cluster;
      for (const [id, d] of s.drawn) {
        const entity = mine && kindOfID(id) !== 'consumer'; // a Backstage id, not an object
        const key = keyOfID(id);
        d.classList.toggle('on-lineage', entity && on.has(key));
        d.classList.toggle('broken', entity && lineage.broken.has(key));
        d.classList.toggle('picked', entity && key === lineage.picked);
      }
      for (const p of s.svg.children) {
        p.classList.toggle('on-lineage', mine && lineage.pairs.has(keyOfID(p.dataset.from) + '\n' + keyOfID(p.dataset.to)));
      }
    }
  }

  const endText = {
    sink: 'ends here', uri: 'leaves the graph', dangling: 'dangling: broken route', cycle: 'cycle: loops back',
    hidden: 'hidden namespace', nowhere: 'nowhere: nothing takes it on', tooLong: 'too long (64 hops)', origin: 'origin',
  };

  function entityButton(cls, key) {
    const b = el('button', cls, describe(key));
    b.type = 'button';
    b.dataset.key = key;
    b.title = key;
    return b;
  }

  function hopElement(h) {
    if (h.key) return entityButton('hop' + (h.dangling ? ' dangling' : ''), h.key);
    if (h.uri) {
      const u = el('span', 'hop uri', h.uri);
      u.dataset.uri = h.uri;
      return u;
    }
    return el('span', 'hop hidden', '(hidden)');
  }

  function showPath(p) {
    const li = el('li', 'path end-' + p.end);
    li.dataset.end = p.end;
    let prev = '';
    for (const h of p.hops || []) {
      const here = h.key || h.uri || '';
      if (li.childElementCount) {
        const changes = h.changes || h.role === 'reply';
        const a = el('span', 'arrow' + (changes ? ' changes' : '') + (h.role === 'deadLetterSink' ? ' dead-letter' : ''),
          '→ ' + (h.role || '') + (h.changes ? ' (event may change)' : ''));
        a.dataset.from = prev;
        a.dataset.to = here;
        a.dataset.role = h.role || '';
        li.append(a);
      }
      const hop = el('span', 'step');
      hop.append(hopElement(h));
      if (h.index !== undefined) hop.append(el('span', 'tag', '#' + h.index));
      if (h.filter !== undefined) hop.append(el('code', 'filter', JSON.stringify(h.filter)));
      if (h.match === 'maybe') hop.append(el('span', 'tag maybe', 'may match'));
      if (h.ready) hop.append(el('span', 'tag bad', 'Ready ' + h.ready.status + (h.ready.reason ? ' (' + h.ready.reason + ')' : '')));
      if (h.dangling) hop.append(el('span', 'tag bad', 'does not exist'));
      for (const pr of lineage.problemsOf.get(h.key) || []) {
        const t = el('span', 'tag bad', pr.problem);
        t.title = pr.detail;
        t.dataset.problem = pr.problem;
        t.dataset.problemOf = pr.key;
        hop.append(t);
      }
      if (h.deadLetterSink) {
        const missing = lineage.danglingRefs.has(h.deadLetterSink);
        const d = isKey(h.deadLetterSink) ? entityButton('dead-letter', h.deadLetterSink) : el('span', 'dead-letter', h.deadLetterSink);
        d.textContent = 'failures → ' + d.textContent + (missing ? ' (does not exist)' : '');
        if (missing) d.classList.add('dangling');
        if (!isKey(h.deadLetterSink)) d.dataset.uri = h.deadLetterSink;
        d.dataset.of = here;
        hop.append(d);
      }
      li.append(hop);
      prev = here;
    }
    li.append(el('span', 'end', endText[p.end] || p.end));
    return li;
  }

  function showLineage() {
    const aside = $('lineage');
    document.body.dataset.lineage = lineage.state;
    if (aside.hidden !== !lineage.query) {
      aside.hidden = !lineage.query;
      redrawAll(); // the graph got narrower or wider: its boxes moved
    }
    aside.dataset.query = lineage.query;
    aside.dataset.cluster = lineage.cluster;
    const a = lineage.answer;
    aside.dataset.sequence = a ? String(a.sequence) : '';
    syncPicker();
    if (!lineage.query) {
      $('lineage-body').replaceChildren();
      return;
    }
    const q = new URLSearchParams(lineage.query);
    $('lineage-title').textContent = (lineage.cluster ? lineage.cluster + ' · ' : '') + (q.has('broken') ? 'What is broken'
      : q.has('eventType') ? 'Where events of EventType ' + q.get('eventType') + ' go' : 'Who sends to ' + describe(q.get('target')) + ', and who may');
    const status = {
      loading: 'asking…',
      missing: (lineage.picked ? describe(lineage.picked) : 'It') + ' does not exist now, or is in a namespace you may not see. Shown again when it appears.',
      error: 'GET /v1/lineage failed (' + lineage.why + '); asked again at the next change.',
    }[lineage.state];
    const parts = [];
    if (a) {
      const n = (a.paths || []).length;
      $('lineage-status').textContent = (q.has('broken') ? plural((a.broken || []).length, 'problem', 'problems') : plural(n, 'path', 'paths')) +
        ' · mesh #' + a.sequence;
      if (a.truncated) parts.push(el('p', 'truncated', 'Cut short: there is more than listed (the limit of paths or problems, or 64 hops).'));
      if ((a.producers || []).length) {
        const s = el('div', 'producers');
        s.append(el('h3', '', 'Produced by'));
        for (const k of a.producers) s.append(entityButton('hop producer', k));
        parts.push(s);
      }
      if (a.authorization) {
        const s = el('div', 'admission');
        s.append(el('h3', '', 'Who may send'));
        s.append(el('p', '', a.authorization === 'policies' ? 'EventPolicies apply: only what they admit may send.'
          : 'No EventPolicy applies: the cluster’s default-authorization-mode decides.'));
        const ul = el('ul', 'policies');
        for (const pol of a.policies || []) {
          const li = el('li');
          li.append(entityButton('policy', pol.key), el('span', '', ' admits '));
          for (const f of pol.from || []) li.append(f.startsWith('sub:') ? el('code', 'subject', f) : entityButton('from', f));
          if (pol.filter !== undefined) li.append(el('span', 'label', ' when '), el('code', 'filter', JSON.stringify(pol.filter)));
          ul.append(li);
        }
        s.append(ul);
        if ((a.senders || []).length) {
          s.append(el('h3', '', 'Who sends'));
          const senders = el('ul', 'senders');
          for (const snd of a.senders) {
            const li = el('li');
            li.dataset.key = snd.key;
            li.append(entityButton('sender', snd.key), el('span', 'role', ' ' + snd.role + (snd.via ? ' via ' + describe(snd.via) : '')));
            if (snd.admitted) {
              const badge = el('span', 'tag admitted-' + snd.admitted, { yes: 'admitted', maybe: 'maybe admitted (OIDC subjects)', no: 'not admitted' }[snd.admitted] || snd.admitted);
              li.dataset.admitted = snd.admitted;
              li.append(badge);
            }
            senders.append(li);
          }
          s.append(senders);
        }
        parts.push(s);
      }
      if (q.has('broken')) {
        const ol = el('ol', 'problems');
        for (const p of a.broken || []) {
          const li = el('li', 'problem');
          li.dataset.problem = p.problem;
          li.append(el('span', 'tag bad', p.problem), entityButton('hop', p.key), el('span', 'detail', p.detail));
          ol.append(li);
        }
        parts.push((a.broken || []).length ? ol : el('p', 'empty', 'Nothing is broken.'));
      } else {
        parts.push(el('h3', '', q.has('eventType') ? 'Where its events go' : 'Routes to it'));
        const ol = el('ol', 'paths');
        for (const p of a.paths || []) ol.append(showPath(p));
        parts.push(n ? ol : el('p', 'empty', 'No path.'));
      }
    } else $('lineage-status').textContent = status || '';
    $('lineage-body').replaceChildren(...parts);
  }

  // ---- The picker ----

  const pickerKinds = [['eventtype', 'Event types'], ['broker', 'Brokers'], ['subscribable', 'Channels'], ['source', 'Sources']];

  // A picker option's value is the query, after its cluster in a merged view ("east:QUERY";
  // neither a cluster name nor an encoded query holds ':').
  const pickValue = (cluster, query) => (cluster && query ? cluster + ':' + query : query);
  function option(text, cluster, query, key) {
    const o = new Option(text, pickValue(cluster, query));
    o.dataset.cluster = cluster;
    o.dataset.query = query;
    o.dataset.key = key;
    return o;
  }

  // fillPicker lists the entities of the replicas when the picker is about to open, if a
  // replica changed since it last did.
  let pickerFilled = '';
  function fillPicker() {
    const at = replicas.map((r) => r.epoch + '-' + r.seq).join(' ');
    if (at === pickerFilled) return;
    pickerFilled = at;
    const opts = [new Option('none', '')];
    for (const r of replicas) opts.push(option((r.cluster ? r.cluster + ': ' : '') + 'what is broken', r.cluster, 'broken=true', ''));
    for (const r of replicas) {
      for (const [kind, title] of pickerKinds) {
        const keys = [];
        for (const id of r.entities.keys()) if (id.startsWith(kind + '\n')) keys.push(id.slice(kind.length + 1));
        if (!keys.length) continue;
        keys.sort();
        const group = document.createElement('optgroup');
        group.label = (r.cluster ? r.cluster + ' · ' : '') + title;
        for (const key of keys) group.append(option(describe(key), r.cluster, questionFor(key), key));
        opts.push(group);
      }
    }
    $('lineage-pick').replaceChildren(...opts);
    syncPicker();
  }

  // syncPicker shows the question asked in the picker, adding it when the list lacks it.
  function syncPicker() {
    const sel = $('lineage-pick');
    const value = pickValue(lineage.cluster, lineage.query);
    if (![...sel.options].some((o) => o.value === value)) {
      const text = lineage.picked ? describe(lineage.picked) : lineage.query;
      sel.append(option((lineage.cluster ? lineage.cluster + ': ' : '') + text, lineage.cluster, lineage.query, lineage.picked));
    }
    sel.value = value;
  }

  // ---- Controls ----

  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = $('token').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    $('login').hidden = true;
    for (const r of replicas) if (r.status.state === 'unauthorized') setState(r, 'loading', 'connecting…');
    const waiters = tokenWaiters;
    tokenWaiters = [];
    for (const w of waiters) w();
  });
  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    for (const r of replicas) {
      r.epoch = '';
      if (r.controller) r.controller.abort();
    }
    scheduleRender();
  });
  let searchTimer = 0;
  $('search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      view.search = $('search').value.trim().toLowerCase();
      view.allDirty = true;
      scheduleRender();
    }, 120);
  });
  $('ns-filter').addEventListener('input', () => {
    view.nsFilter = $('ns-filter').value.trim().toLowerCase();
    scheduleRender();
  });
  $('ns-list').addEventListener('change', (ev) => {
    const ns = ev.target.dataset.ns;
    if (ev.target.checked) view.hidden.delete(ns);
    else view.hidden.add(ns);
    for (const r of replicas) view.dirty.add(sectionID(r, ns));
    scheduleRender();
  });
  const setAll = (hide) => {
    const f = view.nsFilter;
    for (const r of replicas) {
      for (const ns of r.byNS.keys()) {
        if (f && !ns.toLowerCase().includes(f)) continue;
        if (hide) view.hidden.add(ns);
        else view.hidden.delete(ns);
      }
    }
    view.allDirty = true;
    scheduleRender();
  };
  $('ns-all').addEventListener('click', () => setAll(false));
  $('ns-none').addEventListener('click', () => setAll(true));
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(redrawAll, 100);
  });

  $('lineage-pick').addEventListener('focus', fillPicker);
  $('lineage-pick').addEventListener('mousedown', fillPicker);
  $('lineage-pick').addEventListener('change', (ev) => {
    const o = ev.target.selectedOptions[0];
    if (!o || !o.value) pick('', '', '');
    else pick(o.dataset.query ?? o.value, o.dataset.key || '', o.dataset.cluster ?? replicas[0].cluster); // the document's own option has no data
  });
  $('lineage-close').addEventListener('click', () => pick('', '', ''));
  // A click on a box of the graph, or on an object of the lineage, asks about it (of the
  // cluster it is in).
  $('graph').addEventListener('click', (ev) => {
    const d = ev.target.closest('.node[data-id]');
    if (!d || kindOfID(d.dataset.id) === 'consumer') return;
    const key = keyOfID(d.dataset.id);
    pick(questionFor(key), key, d.closest('section.ns').dataset.cluster || '');
  });
  $('lineage-body').addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-key]');
    if (b) pick(questionFor(b.dataset.key), b.dataset.key, lineage.cluster);
  });

  // A merged view lists its clusters, each with a tick box and its status line.
  if (fleet) {
    $('clusters-nav').hidden = false;
    for (const r of replicas) {
      const li = el('li');
      li.dataset.cluster = r.cluster;
      const label = el('label');
      const box = el('input');
      box.type = 'checkbox';
      box.checked = true;
      box.dataset.cluster = r.cluster;
      label.append(box, el('span', 'name', r.cluster));
      li.append(label, el('span', 'state'));
      r.statusLine = li;
      showClusterStatus(r);
    }
    $('cluster-list').replaceChildren(...replicas.map((r) => r.statusLine));
    $('cluster-list').addEventListener('change', (ev) => {
      const c = ev.target.dataset.cluster;
      if (ev.target.checked) view.hiddenClusters.delete(c);
      else view.hiddenClusters.add(c);
      view.allDirty = true;
      scheduleRender();
    });
    showFleetStatus();
  }

  for (const r of replicas) follow(r);
})();
