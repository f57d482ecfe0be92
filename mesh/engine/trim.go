package engine

import "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

// specRead lists, per kind, the spec fields the engine reads (see object.go and filter.go);
// any other kind is read as a possible source (its sink) or subscriber (metadata only).
var specRead = map[GroupKind][][]string{
	gkBroker:       nil,
	gkTrigger:      {{"broker"}, {"subscriber", "ref"}, {"filter", "attributes"}, {"filters"}},
	gkEventType:    {{"description"}, {"reference"}, {"broker"}, {"attributes"}, {"type"}, {"schema"}, {"schemaData"}, {"source"}},
	gkSubscription: {{"channel"}, {"subscriber", "ref"}},
}

var otherSpecRead = [][]string{{"sink", "ref"}}

// metadataRead is what the engine and the sources read of metadata.
var metadataRead = []string{"name", "namespace", "uid", "resourceVersion", "labels", "annotations"}

// keep says which fields of a map to keep: a nil value keeps the field whole, a non-nil one
// keeps the fields it names of a map value.
type keep map[string]keep

// keepTree turns paths into a keep.
func keepTree(paths [][]string) keep {
	k := keep{}
	for _, path := range paths {
		node := k
		for i, f := range path {
			if i == len(path)-1 {
				node[f] = nil
				break
			}
			next, ok := node[f]
			if !ok || next == nil {
				next = keep{}
				node[f] = next
			}
			node = next
		}
	}
	return k
}

// kept is, per kind, the whole tree of fields Trim keeps.
var kept = func() map[GroupKind]keep {
	out := map[GroupKind]keep{}
	tree := func(spec [][]string) keep {
		paths := [][]string{{"apiVersion"}, {"kind"}}
		for _, f := range metadataRead {
			paths = append(paths, []string{"metadata", f})
		}
		for _, p := range spec {
			paths = append(paths, append([]string{"spec"}, p...))
		}
		return keepTree(paths)
	}
	for gk, spec := range specRead {
		out[gk] = tree(spec)
	}
	out[GroupKind{}] = tree(otherSpecRead)
	return out
}()

// Trim reduces u, in place, to what the engine reads of it: apiVersion, kind, the metadata in
// metadataRead (annotations as the mesh shows them) and its kind's spec fields. A cache of
// trimmed objects (a source's informers) then costs what the mesh needs, not what the objects
// weigh; applying a trimmed object changes the mesh exactly as the whole one would. It
// deletes fields rather than copying what stays, so trimming a large list never holds two
// copies. CustomResourceDefinitions are left alone (sources read more of them).
func Trim(u *unstructured.Unstructured) {
	gk := RefOf(u).groupKind()
	if gk == gkCRD {
		return
	}
	k, known := kept[gk]
	if !known {
		k = kept[GroupKind{}]
	}
	prune(u.Object, k)
	if meta, ok := u.Object["metadata"].(map[string]any); ok {
		if a, ok := meta["annotations"].(map[string]any); ok {
			delete(a, annotationLastApplied) // a whole copy of the object, from kubectl apply
			if len(a) == 0 {
				delete(meta, "annotations")
			}
		}
	}
	if spec, ok := u.Object["spec"].(map[string]any); ok && len(spec) == 0 {
		delete(u.Object, "spec")
	}
}

// prune deletes the fields of m that k does not keep; values of unexpected types stay as
// they are (the engine tolerates them the same way either way).
func prune(m map[string]any, k keep) {
	for f, v := range m {
		sub, ok := k[f]
		switch {
		case !ok:
			delete(m, f)
		case sub != nil:
			if mm, isMap := v.(map[string]any); isMap {
				prune(mm, sub)
				if len(mm) == 0 {
					delete(m, f)
				}
			}
		}
	}
}
