package engine

import "iter"

// smallMap is a map for the engine's relations. Most hold one to a few members (an
// EventType's consumers, a subscriber's Triggers), where a Go map costs over 500 bytes: so a
// smallMap is a slice while small and a map only once it grows past smallMapMax entries.
type smallMap[K, V comparable] struct {
	small []smallEntry[K, V]
	big   map[K]V
}

type smallEntry[K, V comparable] struct {
	k K
	v V
}

type smallSet[K comparable] = smallMap[K, struct{}]

// refSet is a set of object refs.
type refSet = smallSet[ObjectRef]

const smallMapMax = 16

func (m *smallMap[K, V]) Len() int {
	if m == nil {
		return 0
	}
	if m.big != nil {
		return len(m.big)
	}
	return len(m.small)
}

func (m *smallMap[K, V]) Get(k K) (V, bool) {
	if m != nil {
		if m.big != nil {
			v, ok := m.big[k]
			return v, ok
		}
		for _, e := range m.small {
			if e.k == k {
				return e.v, true
			}
		}
	}
	var zero V
	return zero, false
}

// Set sets k's value and reports whether that changed the map.
func (m *smallMap[K, V]) Set(k K, v V) bool {
	if m.big != nil {
		if old, ok := m.big[k]; ok && old == v {
			return false
		}
		m.big[k] = v
		return true
	}
	for i := range m.small {
		if m.small[i].k == k {
			if m.small[i].v == v {
				return false
			}
			m.small[i].v = v
			return true
		}
	}
	if len(m.small) < smallMapMax {
		m.small = append(m.small, smallEntry[K, V]{k, v})
		return true
	}
	m.big = make(map[K]V, 2*smallMapMax)
	for _, e := range m.small {
		m.big[e.k] = e.v
	}
	m.small = nil
	m.big[k] = v
	return true
}

// Add adds k to a set.
func (m *smallMap[K, V]) Add(k K) {
	var zero V
	m.Set(k, zero)
}

// Delete removes k and reports whether it was there.
func (m *smallMap[K, V]) Delete(k K) bool {
	if m == nil {
		return false
	}
	if m.big != nil {
		_, ok := m.big[k]
		delete(m.big, k)
		return ok
	}
	for i := range m.small {
		if m.small[i].k == k {
			last := len(m.small) - 1
			m.small[i] = m.small[last]
			m.small[last] = smallEntry[K, V]{}
			m.small = m.small[:last]
			if last == 0 {
				m.small = nil
			}
			return true
		}
	}
	return false
}

// All yields every entry once, in no particular order. Like a map's range, it tolerates the
// deletion of the entry it is at.
func (m *smallMap[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		if m == nil {
			return
		}
		if m.big != nil {
			for k, v := range m.big {
				if !yield(k, v) {
					return
				}
			}
			return
		}
		// Backwards: deleting entry i moves the last entry, already yielded, into its place.
		for i := len(m.small) - 1; i >= 0; i-- {
			if i >= len(m.small) {
				continue
			}
			if e := m.small[i]; !yield(e.k, e.v) {
				return
			}
		}
	}
}

// Keys yields every key once (see All).
func (m *smallMap[K, V]) Keys() iter.Seq[K] {
	return func(yield func(K) bool) {
		for k := range m.All() {
			if !yield(k) {
				return
			}
		}
	}
}

func addRef[K, M comparable](m map[K]*smallSet[M], k K, r M) {
	s := m[k]
	if s == nil {
		s = &smallSet[M]{}
		m[k] = s
	}
	s.Add(r)
}

func removeRef[K, M comparable](m map[K]*smallSet[M], k K, r M) {
	if s := m[k]; s != nil {
		s.Delete(r)
		if s.Len() == 0 {
			delete(m, k)
		}
	}
}
