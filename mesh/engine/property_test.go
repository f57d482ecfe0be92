package engine

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestIncrementalEqualsRebuild drives the engine with long random sequences of object changes
// over a small universe of names (so changes collide and relations form and break), and after
// every step checks that:
//   - the snapshot equals the oracle's from-scratch build of the same objects;
//   - replaying the emitted changes onto an empty replica reproduces the snapshot;
//   - sequence numbers are consecutive and every op is valid for the replica's state;
//   - after an epoch restart, a replica started empty from the restart's changes alone is whole.
func TestIncrementalEqualsRebuild(t *testing.T) {
	t.Parallel()
	const seeds, steps = 24, 500 // 12,000 steps in all
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runProperty(t, seed, steps)
		})
	}
}

func runProperty(t *testing.T, seed uint64, steps int) {
	g := &generator{rnd: newRand(seed)}
	engine := New("prop")
	objects := map[ObjectRef]*unstructured.Unstructured{}
	replica := map[string]json.RawMessage{} // "kind key" → JSON
	last := map[string]mesh.Change{}        // "kind key" → its latest change
	var lastSeq uint64
	epoch := "prop"
	seen := map[string]bool{} // entity kinds and edge states the run produced

	apply := func(step int, desc string, changes []mesh.Change) {
		for _, c := range changes {
			if c.Sequence != lastSeq+1 || c.Epoch != epoch {
				t.Fatalf("step %d (%s): change %v: sequence %d in epoch %q, want %d in %s", step, desc, c, c.Sequence, c.Epoch, lastSeq+1, epoch)
			}
			lastSeq = c.Sequence
			seen[c.Kind.String()] = true
			seen["dangling edge"] = seen["dangling edge"] || strings.Contains(string(c.Entity), `"dangling":true`)
			seen["index"] = seen["index"] || strings.Contains(string(c.Entity), `"index":1`)
			k := c.Kind.String() + " " + c.Key.String()
			_, had := replica[k]
			switch {
			case c.Op == mesh.OpAdded && had, c.Op != mesh.OpAdded && !had:
				t.Fatalf("step %d (%s): %v but replica has it: %v", step, desc, c, had)
			case c.Op == mesh.OpUpdated && string(replica[k]) != string(c.Previous):
				t.Fatalf("step %d (%s): %v: previous %s, replica %s", step, desc, c, c.Previous, replica[k])
			case c.Op == mesh.OpDeleted:
				delete(replica, k)
			default:
				replica[k] = c.Entity
				last[k] = c
			}
		}
	}

	for step := range steps {
		var desc string
		switch r := g.rnd.IntN(100); {
		case r < 1:
			// A new epoch: a consumer starts over from the stream alone.
			epoch = fmt.Sprintf("prop-%d", step)
			clear(replica)
			clear(last)
			lastSeq = 0
			desc = "restart"
			apply(step, desc, engine.Restart(epoch))
		case r < 3 && len(objects) > 0:
			// A relist that lost some objects: Replace must delete them.
			var keep []*unstructured.Unstructured
			for ref, u := range objects {
				if g.rnd.IntN(4) == 0 {
					delete(objects, ref)
				} else {
					keep = append(keep, u)
				}
			}
			desc = "replace"
			listing := Upserts(keep...)
			listing.Replace = true
			changes, _ := engine.Apply(listing)
			apply(step, desc, changes)
		case r < 10 && len(objects) > 0:
			// A file change: several deletes and upserts as one batch, each entity changed at
			// most once.
			var deletes []ObjectRef
			var upserts []*unstructured.Unstructured
			for range g.rnd.IntN(3) {
				if len(objects) == 0 {
					break
				}
				ref := g.pick(objects)
				delete(objects, ref)
				deletes = append(deletes, ref)
			}
			for range 1 + g.rnd.IntN(4) {
				u := g.object()
				objects[RefOf(u)] = u
				upserts = append(upserts, u)
			}
			desc = fmt.Sprintf("apply %d deletes, %d upserts", len(deletes), len(upserts))
			batch := Upserts(upserts...)
			batch.Deletes = deletes
			changes, _ := engine.Apply(batch)
			seen := map[string]bool{}
			for _, c := range changes {
				k := c.Kind.String() + " " + c.Key.String()
				if seen[k] {
					t.Fatalf("step %d (%s): %s changed twice in one batch", step, desc, k)
				}
				seen[k] = true
			}
			apply(step, desc, changes)
		case r < 30 && len(objects) > 0:
			ref := g.pick(objects)
			delete(objects, ref)
			desc = "delete " + ref.String()
			apply(step, desc, engine.remove(ref))
		default:
			u := g.object()
			objects[RefOf(u)] = u
			desc = "upsert " + RefOf(u).String()
			changes, _ := engine.upsert(u)
			apply(step, desc, changes)
		}

		all := make([]*unstructured.Unstructured, 0, len(objects))
		for _, u := range objects {
			all = append(all, u)
		}
		want := rebuild(all)
		snap := engine.Snapshot()
		got, err := snap.EventMesh()
		if err != nil {
			t.Fatalf("step %d (%s): snapshot: %v", step, desc, err)
		}
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.MarshalIndent(got, "", " ")
			wj, _ := json.MarshalIndent(want, "", " ")
			t.Fatalf("step %d (%s): incremental mesh differs from rebuild\n--- incremental\n%s\n--- rebuild\n%s", step, desc, gj, wj)
		}
		gotWhole, err := snap.Mesh()
		if err != nil {
			t.Fatalf("step %d (%s): snapshot: %v", step, desc, err)
		}
		if wantWhole := rebuildGraph(all); !reflect.DeepEqual(gotWhole, wantWhole) {
			gj, _ := json.MarshalIndent(gotWhole, "", " ")
			wj, _ := json.MarshalIndent(wantWhole, "", " ")
			t.Fatalf("step %d (%s): incremental graph differs from rebuild\n--- incremental\n%s\n--- rebuild\n%s", step, desc, gj, wj)
		}
		if snap.Sequence != lastSeq || snap.Epoch != epoch {
			t.Fatalf("step %d: snapshot sequence %d, last change %d", step, snap.Sequence, lastSeq)
		}
		if snap.Len() != len(replica) {
			t.Fatalf("step %d (%s): snapshot has %d entities, replica %d", step, desc, snap.Len(), len(replica))
		}
		snap.Each(func(en Entity) bool {
			k := en.Kind.String() + " " + en.Key.String()
			if r := replica[k]; string(r) != string(en.JSON) {
				t.Fatalf("step %d (%s): replica %s %s = %s, snapshot %s", step, desc, en.Kind, en.Key, r, en.JSON)
			}
			if l := last[k]; en.Sequence != l.Sequence || en.Op != l.Op {
				t.Fatalf("step %d (%s): snapshot says %s %s last changed by #%d %s, the stream by #%d %s",
					step, desc, en.Kind, en.Key, en.Sequence, en.Op, l.Sequence, l.Op)
			}
			return true
		})
	}
	wanted := []string{"dangling edge", "index"}
	for _, kind := range mesh.EntityKinds() {
		wanted = append(wanted, kind.String())
	}
	for _, name := range wanted {
		if !seen[name] {
			t.Errorf("%d steps produced no %s: the generator does not cover the graph", steps, name)
		}
	}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// generator makes random objects over a small universe of names.
type generator struct{ rnd *rand.Rand }

func (g *generator) pick(objects map[ObjectRef]*unstructured.Unstructured) ObjectRef {
	n := g.rnd.IntN(len(objects))
	for ref := range objects {
		if n == 0 {
			return ref
		}
		n--
	}
	panic("unreachable")
}

func (g *generator) one(options ...string) string { return options[g.rnd.IntN(len(options))] }
func (g *generator) chance(percent int) bool      { return g.rnd.IntN(100) < percent }

var (
	propNamespaces = []string{"a", "b"}
	propNames      = []string{"x", "y", "z"}
	propTypes      = []string{"com.ex.order.created", "com.ex.order.paid", "com.ex.payment.failed", "ping", ""}
	propIDs        = []string{"svc-1", "svc-2", "svc-3"}
)

func (g *generator) meta(ns, name string) map[string]any {
	m := map[string]any{"name": name, "namespace": ns, "uid": g.one("u1", "u2")}
	labels := map[string]any{}
	if g.chance(50) {
		labels[LabelBackstageID] = g.one(propIDs...)
	}
	if g.chance(30) {
		labels["team"] = g.one("red", "blue")
	}
	if len(labels) > 0 {
		m["labels"] = labels
	}
	if g.chance(30) {
		m["annotations"] = map[string]any{annotationLastApplied: "{}", "note": g.one("n1", "n2")}
	}
	return m
}

func (g *generator) ref(kind string) map[string]any {
	r := map[string]any{"name": g.one(propNames...)}
	switch kind {
	case "Broker":
		r["apiVersion"], r["kind"] = "eventing.knative.dev/v1", "Broker"
	case "TestChannel":
		r["apiVersion"], r["kind"] = "messaging.example.dev/v1", "TestChannel"
	case "Sequence", "Parallel":
		r["apiVersion"], r["kind"] = "flows.knative.dev/v1", kind
	case "EventTransform":
		r["apiVersion"], r["kind"] = "eventing.knative.dev/v1alpha1", kind
	case "JobSink":
		r["apiVersion"], r["kind"] = "sinks.knative.dev/v1alpha1", kind
	default: // a subscriber
		r["apiVersion"], r["kind"] = g.one("v1", "serving.knative.dev/v1", "eventing.knative.dev/v1"), g.one("Service", "Broker")
		if g.chance(25) {
			r["apiVersion"], r["kind"] = "flows.knative.dev/v1", g.one("Sequence", "Parallel")
		}
	}
	if g.chance(30) {
		r["namespace"] = g.one(propNamespaces...)
	}
	return r
}

func (g *generator) object() *unstructured.Unstructured {
	ns, name := g.one(propNamespaces...), g.one(propNames...)
	var o map[string]any
	switch g.rnd.IntN(18) {
	case 0:
		o = map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": g.meta(ns, name)}
		if g.chance(40) {
			o["spec"] = map[string]any{"delivery": g.delivery()}
		}
	case 1, 2:
		o = g.eventType(ns, name)
	case 3, 4:
		o = map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": g.meta(ns, name), "spec": g.triggerSpec()}
	case 5:
		spec := map[string]any{"channel": g.ref("TestChannel")}
		if g.chance(85) {
			spec["subscriber"] = map[string]any{"ref": g.ref("subscriber")}
		}
		if g.chance(40) {
			spec["reply"] = g.destination()
		}
		if g.chance(40) {
			spec["delivery"] = g.delivery()
		}
		o = map[string]any{"apiVersion": "messaging.knative.dev/v1", "kind": "Subscription", "metadata": g.meta(ns, name), "spec": spec}
	case 6:
		o = map[string]any{"apiVersion": "messaging.example.dev/v1", "kind": "TestChannel", "metadata": g.meta(ns, name)}
	case 7:
		o = map[string]any{"apiVersion": "sources.example.dev/v1", "kind": "TestSource", "metadata": g.meta(ns, name)}
		if g.chance(70) {
			o["spec"] = map[string]any{"sink": map[string]any{"ref": g.ref("Broker")}}
		}
	case 8, 11:
		o = map[string]any{"apiVersion": g.one("v1", "serving.knative.dev/v1"), "kind": "Service", "metadata": g.meta(ns, name)}
	case 12:
		o = g.sequence(ns, name, flowOdds{parts: 3, delivery: 30, reply: 50})
	case 13:
		o = g.parallel(ns, name, flowOdds{parts: 2, branchReply: 40, delivery: 30, reply: 50})
	case 14:
		spec := map[string]any{"jsonata": map[string]any{"expression": "{'type': 'x'}"}}
		if g.chance(70) {
			spec["sink"] = g.destination()
		}
		o = map[string]any{"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "EventTransform", "metadata": g.meta(ns, name), "spec": spec}
	case 15:
		o = map[string]any{"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "RequestReply", "metadata": g.meta(ns, name),
			"spec": map[string]any{"brokerRef": g.ref("Broker"), "correlationAttribute": "corr", "replyAttribute": "reply"}}
	case 16:
		spec := map[string]any{}
		if g.chance(70) {
			to := map[string]any{"ref": g.ref("Broker")}
			if g.chance(30) {
				to = map[string]any{"selector": map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
					"matchLabels": map[string]any{"team": "red"}}}
			}
			spec["to"] = []any{to}
		}
		if g.chance(70) {
			from := map[string]any{"sub": "system:serviceaccount:" + ns + ":*"}
			if g.chance(50) {
				from = map[string]any{"ref": g.ref("subscriber")}
			}
			spec["from"] = []any{from}
		}
		if g.chance(30) {
			spec["filters"] = []any{g.filter(1)}
		}
		o = map[string]any{"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "EventPolicy", "metadata": g.meta(ns, name), "spec": spec}
	case 17:
		o = map[string]any{"apiVersion": "sinks.knative.dev/v1alpha1", "kind": g.one("JobSink", "IntegrationSink"), "metadata": g.meta(ns, name)}
	default:
		o = g.crd()
	}
	if g.chance(40) {
		o["status"] = g.status(ns, name)
	}
	return &unstructured.Unstructured{Object: o}
}

// status is an object's status as a controller would write it: a Ready condition and maybe an
// address.
func (g *generator) status(ns, name string) map[string]any {
	s := map[string]any{"conditions": []any{
		map[string]any{"type": "Succeeded", "status": "True"},
		map[string]any{"type": "Ready", "status": g.one("True", "False", "Unknown", "Maybe"), "reason": g.one("", "NotFound")},
	}}
	if g.chance(50) {
		s["address"] = map[string]any{"url": "http://" + name + "." + ns + ".svc.cluster.local", "audience": g.one("", "aud")}
	}
	return s
}

// destination is a Knative Destination: a ref to something addressable, a URI, or both.
// flowOdds shape a random Sequence or Parallel: up to parts steps or branches, and the
// percent chances of a step's or branch's delivery, a branch's reply and the flow's reply.
type flowOdds struct{ parts, delivery, branchReply, reply int }

// sequence is a random Sequence. A zero chance draws nothing, so generators that never ask
// for a part keep their random stream.
func (g *generator) sequence(ns, name string, odds flowOdds) map[string]any {
	steps := make([]any, 1+g.rnd.IntN(odds.parts))
	for i := range steps {
		step := g.destination()
		if odds.delivery > 0 && g.chance(odds.delivery) {
			step["delivery"] = g.delivery()
		}
		steps[i] = step
	}
	spec := map[string]any{"steps": steps}
	if g.chance(odds.reply) {
		spec["reply"] = g.destination()
	}
	return map[string]any{"apiVersion": "flows.knative.dev/v1", "kind": "Sequence", "metadata": g.meta(ns, name), "spec": spec}
}

// parallel is a random Parallel (a branch's filter: two times in five).
func (g *generator) parallel(ns, name string, odds flowOdds) map[string]any {
	branches := make([]any, 1+g.rnd.IntN(odds.parts))
	for i := range branches {
		b := map[string]any{"subscriber": g.destination()}
		if g.chance(40) {
			b["filter"] = g.destination()
		}
		if g.chance(odds.branchReply) {
			b["reply"] = g.destination()
		}
		if odds.delivery > 0 && g.chance(odds.delivery) {
			b["delivery"] = g.delivery()
		}
		branches[i] = b
	}
	spec := map[string]any{"branches": branches}
	if g.chance(odds.reply) {
		spec["reply"] = g.destination()
	}
	return map[string]any{"apiVersion": "flows.knative.dev/v1", "kind": "Parallel", "metadata": g.meta(ns, name), "spec": spec}
}

func (g *generator) destination() map[string]any {
	d := map[string]any{}
	if g.chance(80) {
		d["ref"] = g.ref(g.one("subscriber", "Broker", "TestChannel", "Sequence", "Parallel", "EventTransform", "JobSink"))
	}
	if _, ok := d["ref"]; !ok || g.chance(20) {
		d["uri"] = g.one("http://example.com", "/path")
	}
	return d
}

func (g *generator) delivery() map[string]any {
	return map[string]any{"deadLetterSink": g.destination(), "retry": 3}
}

func (g *generator) eventType(ns, name string) map[string]any {
	spec := map[string]any{}
	meta := g.meta(ns, name)
	if g.chance(30) {
		meta["ownerReferences"] = []any{map[string]any{"apiVersion": g.one("sources.example.dev/v1", "eventing.knative.dev/v1"),
			"kind": g.one("TestSource", "Broker"), "name": g.one(propNames...), "uid": "o1", "controller": g.chance(80)}}
	}
	typ := g.one(propTypes...)
	switch r := g.rnd.IntN(10); {
	case r < 7:
		spec["reference"] = g.ref(g.one("Broker", "Broker", "TestChannel"))
	case r < 8:
		spec["broker"] = g.one(propNames...)
	}
	if g.chance(40) {
		spec["description"] = g.one("d1", "d2")
	}
	if g.chance(50) {
		if typ != "" {
			spec["type"] = typ
		}
		if g.chance(50) {
			spec["source"] = g.one("/src/1", "/src/2")
		}
		if g.chance(30) {
			spec["schema"] = "https://schema.example/" + g.one("a", "b")
		}
		if g.chance(20) {
			spec["schemaData"] = "{}"
		}
		return map[string]any{"apiVersion": "eventing.knative.dev/v1beta2", "kind": "EventType", "metadata": meta, "spec": spec}
	}
	if g.chance(15) {
		typ = "com.ex.{kind}.created"
	}
	attrs := []any{map[string]any{"name": "type", "value": typ, "required": true}}
	if g.chance(50) {
		attrs = append(attrs, map[string]any{"name": "source", "value": g.one("/src/1", "/src/2", "/src/{name}")})
	}
	if g.chance(30) {
		attrs = append(attrs, map[string]any{"name": "dataschema", "value": "https://schema.example/c"})
	}
	if g.chance(20) {
		attrs = append(attrs, map[string]any{"name": "region", "value": g.one("eu", "us")})
	}
	spec["attributes"] = attrs
	return map[string]any{"apiVersion": "eventing.knative.dev/v1beta3", "kind": "EventType", "metadata": meta, "spec": spec}
}

func (g *generator) triggerSpec() map[string]any {
	spec := map[string]any{"broker": g.one(propNames...)}
	if g.chance(20) {
		delete(spec, "broker")
		spec["brokerRef"] = g.ref("Broker")
	}
	if g.chance(30) {
		spec["delivery"] = g.delivery()
	}
	switch r := g.rnd.IntN(10); {
	case r < 8:
		spec["subscriber"] = map[string]any{"ref": g.ref("subscriber")}
	case r < 9:
		spec["subscriber"] = map[string]any{"uri": "http://example.com"}
	}
	switch g.rnd.IntN(4) {
	case 0:
		spec["filter"] = map[string]any{"attributes": map[string]any{"type": g.one(propTypes...)}}
	case 1, 2:
		n := 1 + g.rnd.IntN(2)
		fs := make([]any, n)
		for i := range fs {
			fs[i] = g.filter(2)
		}
		spec["filters"] = fs
	}
	return spec
}

var propCESQL = []string{
	"type = 'com.ex.order.created'",
	"type LIKE 'com.ex.order.%'",
	"source = '/src/1' AND type = 'ping'",
	"region = 'eu'",
	"EXISTS region",
	"NOT EXISTS subject",
	"LENGTH(type) > 10",
	"type = ", // invalid: skipped
}

func (g *generator) filter(depth int) map[string]any {
	attr := g.one("type", "type", "source", "region")
	switch r := g.rnd.IntN(8); {
	case r == 0:
		return map[string]any{"exact": map[string]any{attr: g.one("com.ex.order.created", "ping", "/src/1", "eu")}}
	case r == 1:
		return map[string]any{"prefix": map[string]any{attr: g.one("com.ex.order", "com.ex.", "/src", "x")}}
	case r == 2:
		return map[string]any{"suffix": map[string]any{attr: g.one("created", "failed", "1")}}
	case r == 3:
		return map[string]any{"cesql": g.one(propCESQL...)}
	case depth > 0 && r == 4:
		return map[string]any{"not": g.filter(depth - 1)}
	case depth > 0 && r < 7:
		list := []any{g.filter(depth - 1), g.filter(depth - 1)}
		return map[string]any{g.one("all", "any"): list}
	}
	return map[string]any{"exact": map[string]any{"type": g.one(propTypes[:4]...)}}
}

func (g *generator) crd() map[string]any {
	group, kind, plural := "messaging.example.dev", "TestChannel", "testchannels"
	if g.chance(50) {
		group, kind, plural = "sources.example.dev", "TestSource", "testsources"
	}
	labels := map[string]any{}
	if g.chance(60) {
		labels[LabelSubscribable] = "true"
	}
	if g.chance(60) {
		labels[LabelSource] = g.one("true", "false")
	}
	meta := map[string]any{"name": plural + "." + group, "labels": labels}
	if g.chance(70) {
		types := []map[string]string{}
		for _, t := range propTypes {
			if g.chance(40) {
				types = append(types, map[string]string{"type": t})
			}
		}
		raw, _ := json.Marshal(types)
		if g.chance(10) {
			raw = []byte("[not json")
		}
		meta["annotations"] = map[string]any{AnnotationEventType: string(raw)}
	}
	return map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": meta,
		"spec": map[string]any{"group": group, "names": map[string]any{"kind": kind, "plural": plural}, "scope": "Namespaced"},
	}
}
