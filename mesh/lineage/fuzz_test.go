package lineage

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// FuzzParseQuery: no query string or JSON makes ParseQuery or Query's JSON panic, every error
// wraps ErrQuery (or is JSON's own), and what parses reads back equal from its parameters
// (Values) and from its JSON. Seeds: testdata/fuzz/FuzzParseQuery.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"eventType=shop/order-created", "target=eventing.knative.dev/Broker/shop/orders&limit=10000",
		"broken", "broken=1&limit=1", `{"eventType":"a/b","limit":3}`, `{"target":"/Service/a/s"}`, `{"broken":true}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, _ := url.ParseQuery(raw) // what parses of a malformed string is a query too
		if q, err := ParseQuery(v); err != nil {
			if !errors.Is(err, ErrQuery) {
				t.Fatalf("ParseQuery(%q): %v does not wrap ErrQuery", raw, err)
			}
		} else {
			roundTrip(t, q)
		}
		var q Query
		if err := json.Unmarshal([]byte(raw), &q); err == nil {
			roundTrip(t, q)
		}
	})
}

// roundTrip checks that q reads back equal from its parameters and its JSON.
func roundTrip(t *testing.T, q Query) {
	t.Helper()
	again, err := ParseQuery(q.Values())
	if err != nil {
		t.Fatalf("%+v: its parameters %q do not parse: %v", q, q.Values().Encode(), err)
	}
	if !reflect.DeepEqual(again, q) {
		t.Fatalf("%+v read back from %q as %+v", q, q.Values().Encode(), again)
	}
	data, err := json.Marshal(q)
	if err != nil {
		t.Fatalf("%+v: %v", q, err)
	}
	var fromJSON Query
	if err := json.Unmarshal(data, &fromJSON); err != nil {
		t.Fatalf("%+v: its JSON %s does not parse: %v", q, data, err)
	}
	if !reflect.DeepEqual(fromJSON, q) {
		t.Fatalf("%+v read back from %s as %+v", q, data, fromJSON)
	}
}

// The lines WriteMermaid and WriteDOT may write: a name or label is one quoted string that
// holds no quote, newline or (Mermaid) bracket or bar, and (DOT) only escaped quotes and
// backslashes.
var (
	mermaidLine = regexp.MustCompile(`^(flowchart LR|  n\d+\["[^"\[\]|<>\n\r]*"\]|  n\d+ (-->|-\.->)(\|"[^"\[\]|<>\n\r]*"\|)? n\d+)$`)
	dotString   = `"(?:[^"\\\x00-\x1f\x7f\x{2028}\x{2029}]|\\["\\])*"`
	dotLine     = regexp.MustCompile(`^(digraph lineage \{|  rankdir=LR;|  node \[[^\n]*\];|  edge \[[^\n]*\];|` +
		`  n\d+ \[label=` + dotString + `\];|  n\d+ -> n\d+( \[(label=` + dotString + `)?(, )?(style=dashed)?\])?;|\})$`)
)

// FuzzRender: no key, URI, role or dead-letter sink an answer holds lets a string break out
// of its label in WriteMermaid's or WriteDOT's picture. Seeds: testdata/fuzz/FuzzRender.
func FuzzRender(f *testing.F) {
	f.Add("eventing.knative.dev/Broker/shop/orders", "/Service/shop/billing", "http://example.com/x", "subscriber", "http://dls", 0)
	f.Add(`a"b`, "x\ny", `\"]; evil [label="`, `"|end`, "]\r\n", -1)
	f.Fuzz(func(t *testing.T, key1, key2, uri, role, dls string, index int) {
		a := Answer{Paths: []Path{
			{Hops: []Hop{{Key: key1}, {Key: key2, Role: roleOf(role), Index: &index, Match: "maybe", Changes: true, DeadLetterSink: dls},
				{URI: uri, Role: roleOf(role)}}, End: EndURI},
			{Hops: []Hop{{Key: key1}, {Role: roleOf(role)}}, End: EndHidden},
			{Hops: []Hop{{Key: key2, Dangling: true}}, End: EndNowhere},
			{Hops: []Hop{{URI: uri}, {Key: dls, DeadLetterSink: key1}}, End: EndTooLong},
		}}
		for _, out := range []struct {
			name  string
			write func(*bytes.Buffer, Answer) error
			line  *regexp.Regexp
		}{
			{"mermaid", func(b *bytes.Buffer, a Answer) error { return WriteMermaid(b, a) }, mermaidLine},
			{"dot", func(b *bytes.Buffer, a Answer) error { return WriteDOT(b, a) }, dotLine},
		} {
			var b bytes.Buffer
			if err := out.write(&b, a); err != nil {
				t.Fatalf("%s: %v", out.name, err)
			}
			for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
				if !out.line.MatchString(line) {
					t.Fatalf("%s: a string broke out of its label: %q\n%s", out.name, line, b.String())
				}
			}
		}
	})
}

func roleOf(s string) mesh.EdgeRole { return mesh.EdgeRole(s) }
