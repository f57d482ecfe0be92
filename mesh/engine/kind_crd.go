package engine

import (
	"encoding/json"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// KindCRDObject is the Kubernetes kind of CustomResourceDefinitions.
const KindCRDObject = "CustomResourceDefinition"

// CustomResourceDefinitions say which kinds are channels and sources (their labels), which
// event types a source kind provides (an annotation), and how to watch a kind.
var crdKind = Kind{
	Name:      "CustomResourceDefinition",
	GroupKind: GroupKind{GroupCRD, KindCRDObject},
	Find:      FindDefinitions,
	Verbs:     readVerbs,
	read: func(u *unstructured.Unstructured) (any, error) {
		crd, err := parseCRD(u)
		if crd.gk.Group == "" || crd.gk.Kind == "" {
			crd = crdObject{} // unusable: as if absent
		}
		return &crd, err
	},
	upsert: func(e *Engine, ref ObjectRef, obj any) { e.setKind(ref.Name, *obj.(*crdObject)) },
	remove: func(e *Engine, ref ObjectRef) { e.setKind(ref.Name, crdObject{}) },
}

// crdObject is what the engine needs from a CustomResourceDefinition.
type crdObject struct {
	gk           GroupKind
	subscribable bool
	source       bool
	eventTypes   []string // sorted, unique, non-empty
}

func parseCRD(u *unstructured.Unstructured) (crdObject, error) {
	o := u.Object
	c := crdObject{gk: GroupKind{str(o, "spec", "group"), str(o, "spec", "names", "kind")}}
	labels := u.GetLabels()
	c.subscribable = labels[channelRole.CRDLabel] == "true"
	c.source = labels[sourceRole.CRDLabel] == "true"
	if c.gk.Group == "" || c.gk.Kind == "" {
		return c, fmt.Errorf("spec.group and spec.names.kind are required")
	}
	raw, ok := u.GetAnnotations()[AnnotationEventType]
	if !ok || !c.source {
		return c, nil
	}
	var entries []struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(raw), &entries); err != nil {
		return c, fmt.Errorf("annotation %s: %w", AnnotationEventType, err)
	}
	for _, e := range entries {
		if e.Type != "" {
			c.eventTypes = append(c.eventTypes, e.Type)
		}
	}
	slices.Sort(c.eventTypes)
	c.eventTypes = slices.Compact(c.eventTypes)
	return c, nil
}

func crdRef(name string) ObjectRef { return ObjectRef{GroupCRD, KindCRDObject, "", name} }

// setKind records what the CRD called name says about its kind (the zero crdObject: the CRD is
// gone) and re-derives every object of that kind whose role changed.
func (e *Engine) setKind(name string, crd crdObject) {
	if old, ok := e.crdKinds[name]; ok && old != crd.gk {
		e.applyKind(old, nil)
		delete(e.crdKinds, name)
	}
	if crd.gk == (GroupKind{}) {
		return
	}
	e.crdKinds[name] = crd.gk
	e.applyKind(crd.gk, &crd)
}

func (e *Engine) applyKind(gk GroupKind, crd *crdObject) {
	var before, after crdObject
	if old := e.kinds[gk]; old != nil {
		before = *old
	}
	if crd != nil {
		after = *crd
		e.kinds[gk] = crd
	} else {
		delete(e.kinds, gk)
	}
	sourceChanged := before.source != after.source || !slices.Equal(before.eventTypes, after.eventTypes)
	channelChanged := before.subscribable != after.subscribable
	for ref := range e.genericsByKind[gk].Keys() {
		if sourceChanged {
			if before.source {
				e.unindexSource(ref, before.eventTypes)
			}
			if after.source {
				e.indexSource(ref, after.eventTypes)
			}
			e.mark(mesh.KindSource, ref)
			e.mark(mesh.KindSink, ref) // an object named by an edge is a sink unless a source or channel
		}
		if channelChanged {
			e.mark(mesh.KindSubscribable, ref)
			e.mark(mesh.KindSink, ref)
			e.refreshConsumersOf(ref)
		}
	}
}
