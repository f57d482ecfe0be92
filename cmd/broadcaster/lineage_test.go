package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/lineage"
)

func runLineage(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := lineageCommand(context.Background(), args, func(string) string { return "" }, &out, &errOut)
	if errOut.Len() > 0 {
		t.Logf("lineage %q wrote on stderr:\n%s", args, errOut.String())
	}
	return out.String(), err
}

// route is a path as the expectations below write it: its keys, shortened to Kind ns/name,
// joined by " → ", then its end.
func route(p lineage.Path) string {
	short := make([]string, len(p.Keys))
	for i, k := range p.Keys {
		short[i] = shortKey(k)
	}
	return strings.Join(short, " → ") + " (" + p.End + ")"
}

// TestLineageOfTheExample asks every kind of question of the bundled example and checks the
// answers against expectations written by hand from its manifests.
func TestLineageOfTheExample(t *testing.T) {
	t.Parallel()
	const et, orders = "EventType shop/", "Broker shop/orders"
	for _, tt := range []struct {
		name   string
		args   []string
		routes []string
		check  func(t *testing.T, a lineage.Answer)
	}{{
		name: "where order-created goes: every Trigger whose filter can match, the Parallel's branches, a URI",
		args: []string{"--event-type", "shop/order-created"},
		routes: []string{
			et + "order-created → " + orders + " → Trigger shop/audit-everything → Service shop/audit-log (sink)",
			et + "order-created → " + orders + " → Trigger shop/fan-out-new-orders → Parallel shop/notify-everywhere → Service shop/notifications (sink)",
			et + "order-created → " + orders + " → Trigger shop/fan-out-new-orders → Parallel shop/notify-everywhere (sink)", // branch 1: a filter URI, then a subscriber URI
			et + "order-created → " + orders + " → Trigger shop/metrics-orders → Service shop/metrics-exporter (sink)",
			et + "order-created → " + orders + " → Trigger shop/notify-on-orders → Service shop/notifications (sink)",
			et + "order-created → " + orders + " → Trigger shop/webhook (uri)",
		},
		check: func(t *testing.T, a lineage.Answer) {
			branch := a.Paths[2].Hops
			if h := branch[len(branch)-2]; h.Role != "filter" || h.Match != "maybe" || h.URI != "http://vip-filter.shop.svc.cluster.local" {
				t.Errorf("branch 1's filter hop: %+v", h)
			}
			if h := a.Paths[4].Hops[2]; h.Match != "yes" || !strings.Contains(string(h.Filter), `"prefix"`) {
				t.Errorf("notify-on-orders hop: %+v (want its new-style filter, matching)", h)
			}
		},
	}, {
		name: "where order-paid goes: through the Sequence, a transform, and back into the Broker (a cycle, once)",
		args: []string{"--event-type", "shop/order-paid"},
		routes: []string{
			et + "order-paid → " + orders + " → Trigger shop/audit-everything → Service shop/audit-log (sink)",
			et + "order-paid → " + orders + " → Trigger shop/fulfil-paid-orders → Sequence shop/fulfilment → Service shop/audit-log → EventTransform shop/to-invoice → " + orders + " (cycle)",
			et + "order-paid → " + orders + " → Trigger shop/shipping-on-paid → Service shop/shipping (sink)",
			et + "order-paid → " + orders + " → Trigger shop/webhook (uri)",
		},
		check: func(t *testing.T, a lineage.Answer) {
			hops := a.Paths[1].Hops
			if hops[2].DeadLetterSink != "serving.knative.dev/Service/shop/dead-letters" {
				t.Errorf("fulfil-paid-orders: failures go to %q, want the dead-letters Service", hops[2].DeadLetterSink)
			}
			if !hops[5].Changes || !hops[6].Changes || hops[6].Role != "reply" {
				t.Errorf("the transform step and the reply must say the event may change: %+v %+v", hops[5], hops[6])
			}
		},
	}, {
		name:   "a channel: its Subscription",
		args:   []string{"--event-type", "ops/disk-full"},
		routes: []string{"EventType ops/disk-full → InMemoryChannel ops/alerts → Subscription ops/pager → Service ops/pager (sink)"},
	}, {
		name: "who sends to the orders Broker, and who may",
		args: []string{"--target", "eventing.knative.dev/Broker/shop/orders"},
		routes: []string{
			orders + " → Trigger shop/fulfil-paid-orders → Sequence shop/fulfilment → " + orders + " (cycle)",
			"PingSource shop/heartbeat → " + orders + " (origin)",
		},
		check: func(t *testing.T, a lineage.Answer) {
			got := make([]string, len(a.Senders))
			for i, s := range a.Senders {
				got[i] = shortKey(s.Key) + " " + string(s.Role) + " " + s.Admitted
			}
			want := []string{"Sequence shop/fulfilment reply maybe", "PingSource shop/heartbeat sink yes"}
			if !slices.Equal(got, want) {
				t.Errorf("senders %q, want %q", got, want)
			}
			if a.Authorization != "policies" || len(a.Policies) != 1 || a.Policies[0].Key != "eventing.knative.dev/EventPolicy/shop/orders-senders" {
				t.Errorf("policies: %s %+v", a.Authorization, a.Policies)
			}
		},
	}, {
		name: "a sink no policy applies to",
		args: []string{"--target", "/Service/payments/billing"},
		routes: []string{
			"Broker payments/default → Trigger payments/billing-refunds → Service payments/billing (origin)",
			orders + " → Trigger shop/fulfil-paid-orders → Sequence shop/fulfilment → " + orders + " → Trigger shop/billing-on-cancel → Service payments/billing (cycle)",
			"PingSource shop/heartbeat → " + orders + " → Trigger shop/billing-on-cancel → Service payments/billing (origin)",
			orders + " → Trigger shop/fulfil-paid-orders → Sequence shop/fulfilment → " + orders + " → Trigger shop/billing-on-payments → Service payments/billing (cycle)",
			"PingSource shop/heartbeat → " + orders + " → Trigger shop/billing-on-payments → Service payments/billing (origin)",
		},
		check: func(t *testing.T, a lineage.Answer) {
			if a.Authorization != "default" || len(a.Senders) != 3 || a.Senders[0].Via != "eventing.knative.dev/Broker/payments/default" ||
				a.Senders[1].Via != "eventing.knative.dev/Broker/shop/orders" {
				t.Errorf("authorization %q, senders %+v", a.Authorization, a.Senders)
			}
		},
	}, {
		name: "what is broken: the missing dead-letter Service",
		args: []string{"--broken"},
		check: func(t *testing.T, a lineage.Answer) {
			want := lineage.Problem{Problem: "dangling", Key: "eventing.knative.dev/Trigger/payments/billing-refunds", Role: "deadLetterSink",
				Ref: "/Service/payments/refunds-dead-letters", Detail: "its deadLetterSink names /Service/payments/refunds-dead-letters, which does not exist"}
			if len(a.Broken) != 1 || a.Broken[0] != want {
				t.Errorf("broken: %+v, want exactly %+v", a.Broken, want)
			}
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := runLineage(t, append([]string{"--manifests", "../../examples/mesh", "-o", "json"}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			var a lineage.Answer
			if err := json.Unmarshal([]byte(out), &a); err != nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			got := make([]string, len(a.Paths))
			for i, p := range a.Paths {
				got[i] = route(p)
			}
			if !slices.Equal(got, tt.routes) && !(len(got) == 0 && len(tt.routes) == 0) {
				t.Errorf("routes:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.routes, "\n     "))
			}
			if a.Truncated {
				t.Error("truncated")
			}
			if tt.check != nil && !t.Failed() {
				tt.check(t, a)
			}
		})
	}
}

// TestLineageOutputs prints one answer in every format against testdata/lineage/ (go test
// -update rewrites them), and checks the text form names what the JSON does.
func TestLineageOutputs(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"text", "mermaid", "dot"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			got, err := runLineage(t, "--manifests", "../../examples/mesh", "--event-type", "shop/order-paid", "-o", format)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "lineage", "order-paid."+format)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := mustRead(t, path); got != want {
				t.Errorf("%s differs (go test -run TestLineageOutputs -update rewrites it); got:\n%s", path, got)
			}
		})
	}
}

func TestLineageUsage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--manifests", "x"}, "ask exactly one of --event-type NAMESPACE/NAME, --target KEY or --broken"},
		{[]string{"--manifests", "x", "--broken", "--target", "a/B/c/d"}, "ask exactly one"},
		{[]string{"--manifests", "x", "--event-type", "nonamespace"}, `--event-type "nonamespace" is not NAMESPACE/NAME`},
		{[]string{"--manifests", "x", "--target", "Broker/x"}, "target"},
		{[]string{"--manifests", "x", "--broken", "--limit", "-1"}, "--limit"},
		{[]string{"--manifests", "x", "--broken", "-o", "yaml"}, `-o "yaml": want text, json, mermaid or dot`},
		{[]string{"--broken"}, "give exactly one of --manifests DIR, --kubeconfig FILE, --url URL"},
	} {
		_, err := runLineage(t, tt.args...)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want a usage error saying %q", tt.args, err, tt.want)
		}
	}
	_, err := runLineage(t, "--manifests", "../../examples/mesh", "--event-type", "shop/no-such-type")
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "no such entity: eventing.knative.dev/EventType/shop/no-such-type") {
		t.Errorf("an unknown EventType: %v", err)
	}
}

// FuzzLineageText prints answers whose keys, URIs, filters, subjects and details are arbitrary
// strings: the text shows no control character raw, stays valid UTF-8, and prints one line per
// path, sender, policy and problem. The seed corpus is in testdata/fuzz/FuzzLineageText.
func FuzzLineageText(f *testing.F) {
	f.Add("shop", "orders", "http://x", `{"type":"t"}`, "system:serviceaccount:shop:*", "a detail")
	f.Add("ev\x1b]0;title\a", "n\u009b2J\n", "u\r\nforged", "\u202e", "s\x00", "d\x7f\ufffe")
	f.Fuzz(func(t *testing.T, namespace, name, uri, filter, subject, detail string) {
		key := mesh.Key{Group: "eventing.knative.dev", Kind: "Broker", Namespace: namespace, Name: name}.String()
		one := 1
		filterJSON, _ := json.Marshal(filter)
		hops := []lineage.Hop{{Key: key}, {Key: key, Role: mesh.EdgeRole(name), Index: &one, Filter: filterJSON, Match: "maybe",
			DeadLetterSink: uri, Changes: true, Ready: &mesh.Readiness{Status: detail, Reason: detail}}, {URI: uri}, {}}
		for _, a := range []lineage.Answer{
			{Query: lineage.Query{EventType: &mesh.Key{Namespace: namespace, Name: name}}, Position: mesh.Position{Epoch: detail},
				Producers: []string{key, uri}, Paths: []lineage.Path{{Keys: []string{key}, Hops: hops, End: detail}}, Truncated: true},
			{Query: lineage.Query{Target: &mesh.Key{Namespace: namespace, Name: name}}, Authorization: "policies",
				Senders:  []lineage.Sender{{Key: key, Role: mesh.EdgeRole(detail), Via: uri, Admitted: "maybe"}},
				Policies: []lineage.Policy{{Key: key, From: []string{"sub:" + subject, key}, Filter: filterJSON}}},
			{Query: lineage.Query{Broken: true}, Broken: []lineage.Problem{{Problem: "dangling", Key: key, Detail: detail}}},
		} {
			var out bytes.Buffer
			if err := writeLineageText(&out, a); err != nil {
				t.Fatal(err)
			}
			text := out.String()
			if raw := rawControls(text); len(raw) > 0 || !utf8.ValidString(text) {
				t.Fatalf("raw control characters %q (or bytes that are not UTF-8) in:\n%q", raw, text)
			}
			want := 1 + len(a.Paths) + len(a.Senders) + len(a.Policies) + len(a.Broken)
			if a.Producers != nil {
				want++
			}
			if a.Truncated {
				want++
			}
			if n := strings.Count(text, "\n"); n != want {
				t.Fatalf("%d lines, want %d:\n%s", n, want, text)
			}
		}
	})
}

// Asked of a running broadcaster (--url, GET /v1/lineage), every question gets the answer the
// manifests give, but for the position.
func TestLineageOverURL(t *testing.T) {
	t.Parallel()
	base, _ := startRun(t, "../../examples/mesh")
	for _, q := range [][]string{{"--event-type", "shop/order-paid"}, {"--target", "eventing.knative.dev/Broker/shop/orders"}, {"--broken"}} {
		local, err := runLineage(t, append([]string{"--manifests", "../../examples/mesh", "-o", "json"}, q...)...)
		if err != nil {
			t.Fatal(err)
		}
		remote, err := runLineage(t, append([]string{"--url", base, "-o", "json"}, q...)...)
		if err != nil {
			t.Fatal(err)
		}
		var a, b lineage.Answer
		json.Unmarshal([]byte(local), &a)
		json.Unmarshal([]byte(remote), &b)
		a.Position, b.Position = mesh.Position{}, mesh.Position{}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%q: over --url\n%s\nfrom --manifests\n%s", q, remote, local)
		}
	}
	if _, err := runLineage(t, "--url", base, "--event-type", "shop/nothing"); err == nil || !strings.Contains(err.Error(), "404: no such entity") {
		t.Errorf("an unknown EventType over --url: %v", err)
	}
}

// snapshot --whole over --url (GET /v1/mesh's mesh) prints what it prints from the manifests.
func TestSnapshotWholeOverURL(t *testing.T) {
	t.Parallel()
	base, _ := startRun(t, "../../examples/mesh")
	for _, format := range []string{"json", "mermaid"} {
		local, err := runSnapshot(t, nil, "--manifests", "../../examples/mesh", "--whole", "-o", format)
		if err != nil {
			t.Fatal(err)
		}
		remote, err := runSnapshot(t, nil, "--url", base, "--whole", "-o", format)
		if err != nil {
			t.Fatal(err)
		}
		if remote != local {
			t.Errorf("-o %s: over --url\n%s\nfrom --manifests\n%s", format, remote, local)
		}
	}
}
