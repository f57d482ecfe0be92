package engine

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

func TestFilterEval(t *testing.T) {
	t.Parallel()
	declared := attributes{}.with("type", "com.shop.order.created").with("source", "/shop/{region}")
	tests := []struct {
		name   string
		filter filter
		want   tri
	}{
		{"exact match", exactFilter{"type", "com.shop.order.created"}, yes},
		{"exact mismatch", exactFilter{"type", "com.shop.order.paid"}, no},
		{"exact undeclared", exactFilter{"subject", "x"}, maybe},
		{"exact within template", exactFilter{"source", "/shop/eu"}, maybe},
		{"exact outside template", exactFilter{"source", "/bank/eu"}, no},
		{"prefix match", prefixFilter{"type", "com.shop."}, yes},
		{"prefix mismatch", prefixFilter{"type", "org."}, no},
		{"prefix covered by template literal", prefixFilter{"source", "/sh"}, yes},
		{"prefix reaching into template hole", prefixFilter{"source", "/shop/e"}, maybe},
		{"prefix contradicting template", prefixFilter{"source", "/bank"}, no},
		{"suffix match", suffixFilter{"type", ".created"}, yes},
		{"suffix into template hole", suffixFilter{"source", "eu"}, maybe},
		{"not maybe", notFilter{exactFilter{"subject", "x"}}, maybe},
		{"not yes", notFilter{exactFilter{"type", "com.shop.order.created"}}, no},
		{"all with a no", allFilter{exactFilter{"subject", "x"}, prefixFilter{"type", "org."}}, no},
		{"all with a maybe", allFilter{exactFilter{"subject", "x"}, prefixFilter{"type", "com."}}, maybe},
		{"empty all", allFilter{}, yes},
		{"any with a yes", anyFilter{exactFilter{"type", "x"}, prefixFilter{"type", "com."}}, yes},
		{"any of noes", anyFilter{exactFilter{"type", "x"}, prefixFilter{"type", "org."}}, no},
		{"empty any", anyFilter{}, yes},
		{"cesql exact true", mustCESQL(t, "type = 'com.shop.order.created'"), yes},
		{"cesql exact false", mustCESQL(t, "type LIKE '%.paid'"), no},
		{"cesql undeclared", mustCESQL(t, "subject = 'x'"), maybe},
		{"cesql undeclared but proven", mustCESQL(t, "NOT EXISTS subject"), yes},
		{"cesql templated attribute", mustCESQL(t, "source = '/bank'"), maybe},
		{"cesql function is not an attribute", mustCESQL(t, "LENGTH(type) > 3"), yes},
		{"cesql type error", mustCESQL(t, "type + 1 = 2"), no},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.filter.eval(declared); got != tt.want {
				t.Errorf("eval = %d, want %d", got, tt.want)
			}
		})
	}
}

func mustCESQL(t *testing.T, expression string) filter {
	f, err := newCESQLFilter(expression)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCESQLIdentifiers(t *testing.T) {
	t.Parallel()
	got := cesqlIdentifiers("type LIKE 'a%' AND (EXISTS myext1 OR length(Source) > 2) AND abs(x) = 1")
	want := []string{"type", "myext1", "source", "x"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("identifiers = %q, want %q", got, want)
	}
}

func TestTemplatePieces(t *testing.T) {
	t.Parallel()
	tests := []struct {
		template, value string
		match           bool
	}{
		{"/apis/{ns}/ping/{name}", "/apis/shop/ping/tick", true},
		{"/apis/{ns}/ping/{name}", "/apis/shop/pong/tick", false},
		{"{any}", "", true},
		{"a{x}b{y}c", "abc", true},
		{"a{x}b{y}c", "ac", false},
	}
	for _, tt := range tests {
		if got := matchesTemplate(templatePieces(tt.template), tt.value); got != tt.match {
			t.Errorf("%q matches %q = %v, want %v", tt.template, tt.value, got, tt.match)
		}
	}
	if a := (attributes{}).with("type", "unclosed{brace"); a[0].pieces != nil {
		t.Errorf("an unclosed brace is literal, got pieces %q", a[0].pieces)
	}
}

func TestWriteEventMeshMatchesMarshal(t *testing.T) {
	t.Parallel()
	e := New("e")
	var buf bytes.Buffer
	if err := e.Snapshot().WriteEventMesh(&buf); err != nil {
		t.Fatal(err)
	}
	empty, _ := json.Marshal(mesh.EventMesh{Brokers: []mesh.Broker{}, EventTypes: []mesh.EventType{}, Sources: []mesh.Source{}, Subscribables: []mesh.Subscribable{}})
	if buf.String() != string(empty) {
		t.Errorf("empty mesh = %s, want %s", buf.String(), empty)
	}
	g := &generator{rnd: newRand(7)}
	for range 300 {
		e.upsert(g.object())
	}
	snap := e.Snapshot()
	m, err := snap.EventMesh()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(m)
	buf.Reset()
	snap.WriteEventMesh(&buf)
	if buf.String() != string(want) {
		t.Errorf("WriteEventMesh differs from json.Marshal:\n%s\n%s", buf.String(), want)
	}
	if len(m.Brokers) == 0 || len(m.EventTypes) == 0 {
		t.Errorf("generator made no brokers or event types: %s", want)
	}
}
