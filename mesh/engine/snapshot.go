package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"slices"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/google/btree"
)

// Snapshot is the whole mesh after exactly Sequence changes of Epoch. It is immutable and
// cheap to take (the engine's ordered tree is cloned copy-on-write), so callers serialise it
// without holding up the engine.
type Snapshot struct {
	Epoch    string
	Sequence uint64
	tree     *btree.BTreeG[*record]
	ids      *btree.BTreeG[idInNamespace] // Backstage ids by namespace, for namespaced views
}

var _ mesh.State = Snapshot{}

// Snapshot returns the current mesh. Its cost does not depend on the mesh size.
func (e *Engine) Snapshot() Snapshot {
	return Snapshot{Epoch: e.epoch, Sequence: e.seq, tree: e.tree.Clone(), ids: e.idIndex.Clone()}
}

// Position is where the snapshot is in its sequence space.
func (s Snapshot) Position() mesh.Position {
	return mesh.Position{Epoch: s.Epoch, Sequence: s.Sequence}
}

// Len is the number of entities.
func (s Snapshot) Len() int {
	if s.tree == nil {
		return 0
	}
	return s.tree.Len()
}

// Entity is one entity of a snapshot.
type Entity struct {
	Kind mesh.EntityKind
	Key  mesh.Key
	JSON json.RawMessage
	// Sequence and Op are those of the change that produced JSON.
	Sequence uint64
	Op       mesh.Op
	// Foreign says JSON may name another namespace: a namespaced view shows ForView of it.
	Foreign bool
}

// Change is the entity's latest change (what a retained message or a KV entry holds).
func (en Entity) Change(epoch string) mesh.Change {
	return mesh.Change{Epoch: epoch, Sequence: en.Sequence, Kind: en.Kind, Op: en.Op, Key: en.Key, Entity: en.JSON}
}

// Latest lists each entity's latest change, in EventMesh order.
func (s Snapshot) Latest() []mesh.Change {
	out := make([]mesh.Change, 0, s.Len())
	s.Each(func(en Entity) bool {
		out = append(out, en.Change(s.Epoch))
		return true
	})
	return out
}

// Each calls fn for every entity in EventMesh order (brokers, event types, sources,
// subscribables; each by namespace, name, group, kind) until fn returns false.
func (s Snapshot) Each(fn func(Entity) bool) {
	if s.tree == nil {
		return
	}
	s.tree.Ascend(func(r *record) bool {
		return fn(Entity{Kind: r.id.kind, Key: r.id.ref.Key(), JSON: r.json, Sequence: r.seq, Op: r.op, Foreign: r.foreign})
	})
}

var listNames = [...]string{mesh.KindBroker: "brokers", mesh.KindEventType: "eventTypes", mesh.KindSource: "sources", mesh.KindSubscribable: "subscribables"}

// WriteEventMesh writes the snapshot as the EventMesh JSON of GET /v1/getEventMesh, byte for
// byte what json.Marshal(EventMesh) would produce, without building it in memory.
func (s Snapshot) WriteEventMesh(w io.Writer) error { return s.WriteEventMeshOf(w, nil) }

// WriteEventMeshOf is WriteEventMesh with only the entities in namespaces keep accepts, each
// as ForView shows it (all, whole, when keep is nil).
func (s Snapshot) WriteEventMeshOf(w io.Writer, keep func(namespace string) bool) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.WriteString("{")
	open, first := -1, true
	openUpTo := func(kind int) {
		for open < kind {
			if open >= 0 {
				bw.WriteString("],")
			}
			open++
			bw.WriteString(`"` + listNames[open] + `":[`)
			first = true
		}
	}
	s.Each(func(en Entity) bool {
		if keep != nil && !keep(en.Key.Namespace) {
			return true
		}
		openUpTo(int(en.Kind))
		if !first {
			bw.WriteByte(',')
		}
		first = false
		if keep != nil && en.Foreign {
			bw.Write(s.ForView(en.Kind, en.JSON, keep))
		} else {
			bw.Write(en.JSON)
		}
		return true
	})
	openUpTo(len(listNames) - 1)
	bw.WriteString("]}")
	return bw.Flush()
}

// Namespaces lists the namespaces that hold entities, sorted.
func (s Snapshot) Namespaces() []string {
	seen := map[string]struct{}{}
	s.Each(func(en Entity) bool {
		seen[en.Key.Namespace] = struct{}{}
		return true
	})
	out := make([]string, 0, len(seen))
	for ns := range seen {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out
}

// EventMesh decodes the snapshot into the EventMesh value (for tests and small meshes).
func (s Snapshot) EventMesh() (mesh.EventMesh, error) {
	var buf bytes.Buffer
	if err := s.WriteEventMesh(&buf); err != nil {
		return mesh.EventMesh{}, err
	}
	var m mesh.EventMesh
	err := json.Unmarshal(buf.Bytes(), &m)
	return m, err
}
