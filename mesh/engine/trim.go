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

// Trim reduces u, in place, to what the engine reads of it: apiVersion, kind, the metadata in
// metadataRead (annotations as the mesh shows them) and its kind's spec fields. A cache of
// trimmed objects (a source's informers) then costs what the mesh needs, not what the objects
// weigh; applying a trimmed object changes the mesh exactly as the whole one would.
// CustomResourceDefinitions are left alone (sources read more of them).
func Trim(u *unstructured.Unstructured) {
	gk := RefOf(u).groupKind()
	if gk == gkCRD {
		return
	}
	paths, known := specRead[gk]
	if !known {
		paths = otherSpecRead
	}
	trimmed := map[string]any{}
	for _, k := range []string{"apiVersion", "kind"} {
		if v, ok := u.Object[k]; ok {
			trimmed[k] = v
		}
	}
	if meta, ok := u.Object["metadata"].(map[string]any); ok {
		kept := make(map[string]any, len(metadataRead))
		for _, k := range metadataRead {
			if v, ok := meta[k]; ok {
				kept[k] = v
			}
		}
		if a, ok := kept["annotations"].(map[string]any); ok {
			if _, last := a[annotationLastApplied]; last || len(a) == 0 {
				// kubectl apply keeps a whole copy of the object here; the mesh never shows it.
				a = copyWithout(a, annotationLastApplied)
			}
			if len(a) == 0 {
				delete(kept, "annotations")
			} else {
				kept["annotations"] = a
			}
		}
		trimmed["metadata"] = kept
	}
	spec := map[string]any{}
	for _, path := range paths {
		if v, ok := field(u.Object, append([]string{"spec"}, path...)...); ok {
			setPath(spec, path, v)
		}
	}
	if len(spec) > 0 {
		trimmed["spec"] = spec
	}
	u.Object = trimmed
}

func copyWithout(m map[string]any, key string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// setPath sets m[path...] = v, making the maps on the way.
func setPath(m map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}
