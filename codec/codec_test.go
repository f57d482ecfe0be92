package codec

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

func change(kind mesh.EntityKind, op mesh.Op, seq uint64) mesh.Change {
	return mesh.Change{Epoch: "ep", Sequence: seq, Kind: kind, Op: op,
		Key:    mesh.MustParseKey("eventing.knative.dev/Broker/shop/orders"),
		Entity: json.RawMessage(`{"namespace":"shop","name":"orders","uid":"","labels":null,"annotations":null,"providedEventTypes":[]}`)}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	enc, err := NewEncoder("")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []mesh.EntityKind{mesh.KindBroker, mesh.KindEventType, mesh.KindSource, mesh.KindSubscribable} {
		for _, op := range []mesh.Op{mesh.OpAdded, mesh.OpUpdated, mesh.OpDeleted} {
			c := change(kind, op, 42)
			ev, err := enc.Event(c)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type() != "dev.knative.eventmesh."+kind.String()+"."+op.String() || ev.ID() != "ep-42" ||
				ev.Subject() != c.Key.String() || ev.Source() != DefaultSource || ev.DataContentType() != "application/json" ||
				ev.Extensions()["meshepoch"] != "ep" || ev.Extensions()["meshseq"] != int32(42) {
				t.Fatalf("attributes: %s", ev)
			}
			for mode, decode := range map[string]func() (mesh.Change, error){
				"event":      func() (mesh.Change, error) { return Decode(ev) },
				"structured": func() (mesh.Change, error) { b, _ := EncodeStructured(ev); return DecodeStructured(b) },
				"http binary": func() (mesh.Change, error) {
					req, _ := http.NewRequest(http.MethodPost, "http://sink", nil)
					if err := cehttp.WriteRequest(context.Background(), binding.ToMessage(&ev), req); err != nil {
						return mesh.Change{}, err
					}
					if req.Header.Get("Ce-Meshseq") != "42" {
						t.Errorf("binary mode header Ce-Meshseq = %q", req.Header.Get("Ce-Meshseq"))
					}
					got, err := binding.ToEvent(context.Background(), cehttp.NewMessageFromHttpRequest(req))
					if err != nil {
						return mesh.Change{}, err
					}
					return Decode(*got)
				},
			} {
				got, err := decode()
				if err != nil {
					t.Fatalf("%s %s: %v", kind, op, err)
				}
				if !reflect.DeepEqual(got, c) {
					t.Fatalf("%s: round trip\n got %+v\nwant %+v", mode, got, c)
				}
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	enc, _ := NewEncoder("https://cluster.example")
	good, _ := enc.Event(change(mesh.KindBroker, mesh.OpUpdated, 7))
	tests := []struct {
		name   string
		modify func(m map[string]any)
		want   string
	}{
		{"wrong type", func(m map[string]any) { m["type"] = "com.example.other" }, "is not dev.knative.eventmesh.<kind>.<op>"},
		{"unknown op", func(m map[string]any) { m["type"] = "dev.knative.eventmesh.broker.moved" }, "unknown op"},
		{"missing epoch", func(m map[string]any) { delete(m, "meshepoch") }, "extension meshepoch is missing"},
		{"missing seq", func(m map[string]any) { delete(m, "meshseq") }, "extension meshseq is missing"},
		{"seq not a number", func(m map[string]any) { m["meshseq"] = "seven" }, "extension meshseq"},
		{"seq zero", func(m map[string]any) { m["meshseq"] = 0; m["data"].(map[string]any)["sequence"] = 0 }, "positive integer"},
		{"seq mismatch", func(m map[string]any) { m["meshseq"] = 8 }, "data.sequence 7 disagrees with meshseq 8"},
		{"epoch mismatch", func(m map[string]any) { m["meshepoch"] = "other" }, `data.epoch "ep" disagrees`},
		{"subject mismatch", func(m map[string]any) { m["subject"] = "eventing.knative.dev/Broker/shop/other" }, "disagrees with subject"},
		{"kind mismatch", func(m map[string]any) { m["type"] = "dev.knative.eventmesh.source.updated" }, "disagree with type"},
		{"xml", func(m map[string]any) { m["datacontenttype"] = "application/xml" }, "application/xml"},
		{"xml as text", func(m map[string]any) { m["datacontenttype"] = "text/xml"; m["data"] = "<x/>" }, "datacontenttype \"text/xml\""},
		{"data not an object", func(m map[string]any) { m["data"] = []any{1} }, "data:"},
		{"bad key", func(m map[string]any) { m["data"].(map[string]any)["key"] = "nope"; m["subject"] = "nope" }, "data.key"},
		{"entity missing", func(m map[string]any) { delete(m["data"].(map[string]any), "entity") }, "data.entity: missing"},
		{"entity of another object", func(m map[string]any) {
			m["data"].(map[string]any)["entity"] = map[string]any{"namespace": "shop", "name": "x"}
		}, "do not match key"},
		{"no id", func(m map[string]any) { delete(m, "id") }, "id"},
		{"unknown kind the data disagrees with", func(m map[string]any) { m["type"] = "dev.knative.eventmesh.gizmo.updated" }, "disagree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, _ := EncodeStructured(good)
			var m map[string]any
			json.Unmarshal(raw, &m)
			tt.modify(m)
			raw, _ = json.Marshal(m)
			_, err := DecodeStructured(raw)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("error %v, want ErrInvalidEvent containing %q", err, tt.want)
			}
		})
	}
	if _, err := enc.Event(change(mesh.KindBroker, mesh.OpAdded, mesh.MaxSequence+1)); err == nil {
		t.Error("a sequence beyond meshseq's 32-bit range was encoded")
	}
	if _, err := NewEncoder("http://bad host/"); err == nil {
		t.Error("an invalid source was accepted")
	}
}

// An event of a kind a newer broadcaster added decodes as KindUnknown with its position, so a
// consumer skips it and still counts its sequence.
func TestDecodeUnknownKind(t *testing.T) {
	t.Parallel()
	enc, _ := NewEncoder("")
	ev, _ := enc.Event(change(mesh.KindBroker, mesh.OpAdded, 9))
	raw, _ := EncodeStructured(ev)
	var m map[string]any
	json.Unmarshal(raw, &m)
	m["type"] = "dev.knative.eventmesh.gizmo.added"
	m["data"].(map[string]any)["kind"] = "gizmo"
	raw, _ = json.Marshal(m)
	c, err := DecodeStructured(raw)
	if err != nil || c.Kind != mesh.KindUnknown || c.Kind.Known() || c.Sequence != 9 || c.Op != mesh.OpAdded {
		t.Fatalf("decoded %v (%v), want an unknown kind's change #9", c, err)
	}
}

// FuzzDecodeStructured: no input panics, and whatever decodes re-encodes to an equal change.
func FuzzDecodeStructured(f *testing.F) {
	enc, _ := NewEncoder("")
	ev, _ := enc.Event(change(mesh.KindEventType, mesh.OpDeleted, 3))
	good, _ := EncodeStructured(ev)
	f.Add(good)
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"/","type":"dev.knative.eventmesh.broker.added"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeStructured(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("error not marked ErrInvalidEvent: %v", err)
			}
			return
		}
		again, err := enc.Event(c)
		if err != nil {
			t.Fatalf("decoded change does not re-encode: %v", err)
		}
		back, err := Decode(again)
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("re-encoded change differs: %v\n%+v\n%+v", err, back, c)
		}
	})
}

// The hand-assembled data must be exactly what json.Marshal(Data) produces for entities the
// engine makes (themselves from json.Marshal).
func TestEventDataMatchesMarshal(t *testing.T) {
	t.Parallel()
	enc, _ := NewEncoder("")
	tricky, _ := json.Marshal(map[string]string{"namespace": "a<b>", "name": "c&d\u2028"})
	for _, c := range []mesh.Change{
		change(mesh.KindEventType, mesh.OpAdded, 1),
		{Epoch: `e"<&>\u2028é`, Sequence: mesh.MaxSequence, Kind: mesh.KindSource, Op: mesh.OpDeleted,
			Key: mesh.MustParseKey("sources.knative.dev/PingSource/a<b>/c&d\u2028"), Entity: tricky},
	} {
		ev, err := enc.Event(c)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(mesh.EventData{Key: c.Key.String(), Kind: c.Kind.String(), Op: c.Op.String(), Epoch: c.Epoch, Sequence: c.Sequence, Entity: c.Entity})
		if string(ev.Data()) != string(want) {
			t.Errorf("data\n got %s\nwant %s", ev.Data(), want)
		}
		if err := ev.Validate(); err != nil {
			t.Errorf("event invalid: %v", err)
		}
	}
	if _, err := enc.Event(mesh.Change{Epoch: "e", Sequence: 1, Key: mesh.MustParseKey("g/K/ns/n"), Entity: json.RawMessage("{")}); err == nil {
		t.Error("an entity that is not JSON was encoded")
	}
}

// Structured is EncodeStructured(Event(c)) without the event: same members, same values.
func TestStructuredMatchesSDK(t *testing.T) {
	t.Parallel()
	enc, _ := NewEncoder("https://cluster.example/a%20b?x=1&y=(z)")
	tricky, _ := json.Marshal(map[string]string{"namespace": "a<b>", "name": "c&d\u2028"})
	for _, c := range []mesh.Change{
		change(mesh.KindSubscribable, mesh.OpDeleted, 9),
		{Epoch: `e"<&>é`, Sequence: 77, Kind: mesh.KindSource, Op: mesh.OpAdded, Key: mesh.MustParseKey("g/K/a<b>/c&d\u2028"), Entity: tricky},
	} {
		ev, _ := enc.Event(c)
		viaSDK, err := EncodeStructured(ev)
		if err != nil {
			t.Fatal(err)
		}
		direct, err := enc.Structured(c)
		if err != nil {
			t.Fatal(err)
		}
		var a, b map[string]any
		if err := json.Unmarshal(viaSDK, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(direct, &b); err != nil {
			t.Fatalf("direct encoding is not JSON: %v\n%s", err, direct)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("members differ:\n sdk    %s\n direct %s", viaSDK, direct)
		}
		back, err := DecodeStructured(direct)
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Errorf("round trip: %v\n%+v\n%+v", err, back, c)
		}
	}
}
