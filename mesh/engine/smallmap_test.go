package engine

import (
	"maps"
	"math/rand/v2"
	"testing"
)

// A smallMap behaves as a Go map through growth past smallMapMax and shrinking, and its All
// tolerates deleting the entry it is at, as a map's range does.
func TestSmallMapActsAsAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var m smallMap[int, string]
	want := map[int]string{}
	for step := range 20000 {
		k := rng.IntN(3 * smallMapMax)
		switch rng.IntN(3) {
		case 0, 1:
			v := []string{"a", "b"}[rng.IntN(2)]
			old, had := want[k]
			if changed := m.Set(k, v); changed != (!had || old != v) {
				t.Fatalf("step %d: Set(%d, %q) said changed=%v, had=%v old=%q", step, k, v, changed, had, old)
			}
			want[k] = v
		default:
			_, had := want[k]
			if m.Delete(k) != had {
				t.Fatalf("step %d: Delete(%d) disagrees with the map (had=%v)", step, k, had)
			}
			delete(want, k)
		}
		if m.Len() != len(want) {
			t.Fatalf("step %d: Len %d, want %d", step, m.Len(), len(want))
		}
		got := maps.Collect(m.All())
		if !maps.Equal(got, want) {
			t.Fatalf("step %d: holds %v, want %v", step, got, want)
		}
		for k, v := range want {
			if g, ok := m.Get(k); !ok || g != v {
				t.Fatalf("step %d: Get(%d) = %q, %v; want %q", step, k, g, ok, v)
			}
		}
	}
}

func TestSmallMapAllToleratesDeletingTheCurrentEntry(t *testing.T) {
	for _, n := range []int{1, 2, smallMapMax, smallMapMax + 1, 3 * smallMapMax} {
		var s smallSet[int]
		for i := range n {
			s.Add(i)
		}
		seen := map[int]int{}
		for k := range s.Keys() {
			seen[k]++
			if k%2 == 0 {
				s.Delete(k)
			}
		}
		if len(seen) != n {
			t.Errorf("n=%d: yielded %d distinct keys, want %d", n, len(seen), n)
		}
		for k, c := range seen {
			if c != 1 {
				t.Errorf("n=%d: key %d yielded %d times", n, k, c)
			}
		}
		if s.Len() != n/2 {
			t.Errorf("n=%d: %d left, want %d", n, s.Len(), n/2)
		}
	}
}
