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
	// upstream is record.upstream.
	upstream int32
}

// UpstreamJSON is the entity as the upstream backend's GET /v1/getEventMesh served it: JSON
// without its Graph.
func (en Entity) UpstreamJSON() json.RawMessage {
	if en.upstream == 0 {
		return en.JSON
	}
	out := make([]byte, en.upstream+1)
	copy(out, en.JSON[:en.upstream])
	out[en.upstream] = '}'
	return out
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
		return fn(Entity{Kind: r.id.kind, Key: r.id.ref.Key(), JSON: r.json, Sequence: r.seq, Op: r.op, Foreign: r.foreign,
			upstream: r.upstream})
	})
}

// WriteEventMesh writes the snapshot as the EventMesh JSON of GET /v1/getEventMesh, byte for
// byte what json.Marshal(EventMesh) of the entities without their Graph would produce, without
// building it in memory.
func (s Snapshot) WriteEventMesh(w io.Writer) error { return s.WriteEventMeshOf(w, nil) }

// WriteEventMeshOf is WriteEventMesh with only the entities in namespaces keep accepts, each
// as ForView shows it (all, whole, when keep is nil).
func (s Snapshot) WriteEventMeshOf(w io.Writer, keep func(namespace string) bool) error {
	return s.writeLists(w, keep, true)
}

// WriteMeshOf writes the snapshot as the Mesh JSON of GET /v1/mesh: the upstream lists, each
// entity with its Graph, then the list of every other kind the mesh holds. keep is as for
// WriteEventMeshOf.
func (s Snapshot) WriteMeshOf(w io.Writer, keep func(namespace string) bool) error {
	return s.writeLists(w, keep, false)
}

func (s Snapshot) writeLists(w io.Writer, keep func(namespace string) bool, upstreamOnly bool) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.WriteString("{")
	open, lists, first := -1, 0, true // the kind whose list is open, the lists written
	startList := func(k mesh.EntityKind) {
		if lists > 0 {
			bw.WriteByte(',')
		}
		lists++
		bw.WriteString(`"` + k.List() + `":[`)
		first = true
	}
	// moveTo closes the open list, writes the upstream lists up to kind (they are always
	// there, empty or not) and opens kind's.
	moveTo := func(kind int) {
		if open >= 0 {
			bw.WriteByte(']')
		}
		for k := open + 1; k < kind; k++ {
			if mesh.EntityKind(k).Upstream() {
				startList(mesh.EntityKind(k))
				bw.WriteByte(']')
			}
		}
		open = kind
		if mesh.EntityKind(kind).Known() {
			startList(mesh.EntityKind(kind))
		}
	}
	s.Each(func(en Entity) bool {
		if upstreamOnly && !en.Kind.Upstream() {
			return false // the upstream kinds come first
		}
		if keep != nil && !keep(en.Key.Namespace) {
			return true
		}
		if int(en.Kind) != open {
			moveTo(int(en.Kind))
		}
		if !first {
			bw.WriteByte(',')
		}
		first = false
		switch {
		case keep != nil && en.Foreign:
			bw.Write(s.forView(en.Kind, en.JSON, keep, upstreamOnly))
		case upstreamOnly:
			bw.Write(en.UpstreamJSON())
		default:
			bw.Write(en.JSON)
		}
		return true
	})
	moveTo(len(mesh.EntityKinds()))
	bw.WriteString("}")
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

// EventMesh decodes the snapshot's upstream lists into the EventMesh value, without the
// entities' Graph (for tests and small meshes).
func (s Snapshot) EventMesh() (mesh.EventMesh, error) {
	var buf bytes.Buffer
	if err := s.WriteEventMesh(&buf); err != nil {
		return mesh.EventMesh{}, err
	}
	var m mesh.EventMesh
	err := json.Unmarshal(buf.Bytes(), &m)
	return m, err
}

// Mesh decodes the whole snapshot into the Mesh value (for tests and small meshes).
func (s Snapshot) Mesh() (mesh.Mesh, error) {
	var buf bytes.Buffer
	if err := s.WriteMeshOf(&buf, nil); err != nil {
		return mesh.Mesh{}, err
	}
	var m mesh.Mesh
	err := json.Unmarshal(buf.Bytes(), &m)
	return m, err
}
