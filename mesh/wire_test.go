package mesh

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// appender is an entity with a hand-written encoder.
type appender interface {
	AppendJSON(dst []byte) ([]byte, error)
}

// sameAsEncodingJSON checks that v's AppendJSON writes what json.Marshal writes, after a
// prefix that must stay untouched.
func sameAsEncodingJSON(t *testing.T, v appender) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	got, err := v.AppendJSON([]byte("prefix"))
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%T: error %v, encoding/json: %v", v, err, wantErr)
	}
	if err != nil {
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("%T:\n got %s\nwant prefix%s", v, got, want)
	}
}

// awkward strings: what escaping has to get right.
var awkward = []string{"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\rcr\bbs\fff",
	"\x00\x01\x1f\x7f", "é ü 日本", "\u2028\u2029", "\xff\xfe invalid", "a\xc3", "\U0001F600", "\ufffd", "\u0085 C1 \u009b"}

// randomEntities builds entities of every type whose fields are drawn from awkward, each
// optional part present or not.
func randomEntities(r *rand.Rand) []appender {
	str := func() string { return awkward[r.IntN(len(awkward))] }
	opt := func() *string {
		if r.IntN(3) == 0 {
			return nil
		}
		s := str()
		return &s
	}
	strs := func() []string {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		out := make([]string, 1+r.IntN(3))
		for i := range out {
			out[i] = str()
		}
		return out
	}
	strMap := func() map[string]string {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			return map[string]string{}
		}
		m := map[string]string{}
		for range 1 + r.IntN(12) { // beyond the encoder's small buffer at times
			m[str()+str()] = str()
		}
		return m
	}
	ref := func() *GroupKindNamespacedName {
		if r.IntN(2) == 0 {
			return nil
		}
		return &GroupKindNamespacedName{Group: str(), Kind: str(), Namespace: str(), Name: str()}
	}
	raws := []json.RawMessage{nil, {}, json.RawMessage(`{"exact": {"type": "a<b"}}`), json.RawMessage(` [ 1, "\u2028" ] `)}
	graph := func() Graph {
		var g Graph
		if r.IntN(2) == 0 {
			g.Ready = &Readiness{Status: str(), Reason: str()}
		}
		if r.IntN(2) == 0 {
			g.Address = &Address{URL: str(), Audience: str()}
		}
		for range r.IntN(4) {
			ed := Edge{Role: EdgeRole(str()), Ref: ref(), URI: str(), Dangling: r.IntN(2) == 0, Hidden: r.IntN(2) == 0,
				Filter: raws[r.IntN(len(raws))], Selector: raws[r.IntN(len(raws))], Subject: str()}
			if r.IntN(2) == 0 {
				i := r.IntN(2000) - 1000
				ed.Index = &i
			}
			g.Edges = append(g.Edges, ed)
		}
		return g
	}
	return []appender{
		&Broker{Namespace: str(), Name: str(), UID: str(), Labels: strMap(), Annotations: strMap(), ProvidedEventTypes: strs(), Graph: graph()},
		&EventType{Namespace: str(), Name: str(), Type: str(), UID: str(), Description: opt(), SchemaURL: opt(), SchemaData: opt(),
			Labels: strMap(), Annotations: strMap(), Reference: ref(), ConsumedBy: strs(), Graph: graph()},
		&Subscribable{Namespace: str(), Name: str(), UID: str(), Labels: strMap(), Annotations: strMap(), Group: str(), Kind: str(),
			ProvidedEventTypes: strs(), Graph: graph()},
		&Source{Namespace: str(), Name: str(), UID: str(), Labels: strMap(), Annotations: strMap(), Group: str(), Kind: str(),
			ProvidedEventTypeTypes: strs(), ProvidedEventTypes: strs(), Sink: ref(), Graph: graph()},
		&Element{Namespace: str(), Name: str(), UID: str(), Group: str(), Kind: str(), Labels: strMap(), Annotations: strMap(), Graph: graph()},
		func() *Graph { g := graph(); return &g }(),
	}
}

func TestAppendJSONIsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		for _, v := range randomEntities(r) {
			sameAsEncodingJSON(t, v)
		}
	}
	sameAsEncodingJSON(t, &Graph{}) // {}
	sameAsEncodingJSON(t, &Element{})
}

func TestAppendJSONRefusesWhatEncodingJSONRefuses(t *testing.T) {
	bad := &Element{Graph: Graph{Edges: []Edge{{Role: RoleSubscriber, Filter: json.RawMessage(`{"open":`)}}}}
	if _, err := bad.AppendJSON(nil); err == nil {
		t.Fatal("an edge whose filter is not JSON was written")
	}
}

// FuzzAppendJSONString: every string is escaped as encoding/json escapes it.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range awkward {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
		e := &EventType{Name: s, Labels: map[string]string{s: s, "k": s}, ConsumedBy: []string{s}, Description: &s,
			Graph: Graph{Edges: []Edge{{Role: EdgeRole(s), URI: s, Subject: s}}}}
		sameAsEncodingJSON(t, e)
	})
}
