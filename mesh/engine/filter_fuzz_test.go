package engine

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Trigger filters come from users: reading any spec (old-style attributes, new-style filters,
// CESQL) and evaluating the result against any declared type never panics, and an accepted
// filter answers yes, no or maybe. The corpus is in testdata/fuzz/FuzzTriggerFilter.
func FuzzTriggerFilter(f *testing.F) {
	for _, seed := range []struct{ spec, typ string }{
		{`{"filter":{"attributes":{"type":"com.shop.order.created"}}}`, "com.shop.order.created"},
		{`{"filters":[{"prefix":{"type":"com.shop."}},{"not":{"suffix":{"type":".paid"}}}]}`, "com.shop.{kind}.created"},
		{`{"filters":[{"any":[{"exact":{"source":"/a"}},{"cesql":"type LIKE 'com.%' AND source = '/a'"}]}]}`, "com.x"},
		{`{"filters":[{"cesql":"type = "}]}`, "t"},
		{`{"filters":[{"cesql":"type = 'a' # comment"}]}`, "a"},
		{`{"filters":[{"all":[]}],"filter":"not a map"}`, ""},
	} {
		f.Add(seed.spec, seed.typ)
	}
	f.Fuzz(func(t *testing.T, spec, typ string) {
		var m map[string]any
		if json.Unmarshal([]byte(spec), &m) != nil {
			return
		}
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
			"metadata": map[string]any{"name": "t", "namespace": "ns"}, "spec": m}}
		c, _ := parseTrigger(u)
		if c.filter == nil {
			return
		}
		switch got := c.filter.eval(attributes{}.with("type", typ).with("source", "/a")); got {
		case yes, no, maybe:
		default:
			t.Fatalf("filter of %s answered %d", spec, got)
		}
	})
}

// A CESQL expression is bounded in size, and the lexer's complaints become the filter's
// problem instead of lines on stderr.
func TestCESQLBoundsAndQuietErrors(t *testing.T) {
	long := "type = 'a'" + strings.Repeat(" OR type = 'a'", MaxCESQLBytes/14)
	if _, err := newCESQLFilter(long); err == nil || !strings.Contains(err.Error(), "at most 4096") {
		t.Errorf("a %d-byte expression: %v", len(long), err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	_, err = newCESQLFilter("type = 'a' # b")
	os.Stderr = stderr
	w.Close()
	printed, _ := io.ReadAll(r)
	if err == nil || !strings.Contains(err.Error(), "token recognition error") {
		t.Errorf("an expression with a stray character: %v", err)
	}
	if len(printed) > 0 {
		t.Errorf("the parser printed to stderr: %s", printed)
	}
}
