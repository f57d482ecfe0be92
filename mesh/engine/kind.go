package engine

import (
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Kind is everything the broadcaster knows about one kind of Kubernetes object: how a source
// finds its objects, how they are read and checked, what they contribute to the mesh, and the
// entity they stand for. Each kind is declared in one file of this package, kind_<name>.go,
// with its tests beside it. The engine, the cluster source and the manifests source read the
// declarations (Kinds, KindOf) and name no kind themselves, so adding a kind is that file.
//
// Channels, sources and subscribers are roles, not kinds: any kind plays them, as its CRD's
// labels or a reference say. Their declarations have no GroupKind; objects of every kind not
// declared are read once, the same way, and take the roles their kind has.
type Kind struct {
	// Name names the kind or role in logs and docs.
	Name string
	// GroupKind is the declared kind; zero for a role.
	GroupKind GroupKind
	// Find says how a source finds the objects.
	Find Find
	// CRDLabel is the CRD label that, set to "true", gives a kind this role (FindByCRDLabel).
	CRDLabel string
	// Verbs are the API verbs the cluster source uses on the objects (its RBAC).
	Verbs []string
	// Entity is the mesh entity the objects stand for, when HasEntity.
	Entity    mesh.EntityKind
	HasEntity bool

	// read reads the kind's part of an object (nil: the object's metadata is all it has)
	// and returns what it could not read.
	read func(u *unstructured.Unstructured) (obj any, problems error)
	// delivers says where what reaches an object of the kind goes unchanged (a Sequence's first
	// step, a Parallel's branches): their Backstage ids consume what consumers deliver to it.
	delivers func(g *graphPart) []ObjectRef
	// edges reads the kind's references that events follow (nil: none beyond what every kind
	// has, spec.delivery.deadLetterSink).
	edges func(u *unstructured.Unstructured) []edgeSpec
	// validate judges a manifest as the API server and Knative's webhooks would, for the
	// fields the mesh reads (spec is nil when absent or not an object).
	validate func(spec map[string]any, u *unstructured.Unstructured) field.ErrorList
	// upsert and remove apply an object, read by read, and its deletion to the engine's state
	// and relations, marking each entity they change.
	upsert func(e *Engine, ref ObjectRef, obj any)
	remove func(e *Engine, ref ObjectRef)
	// render is the entity ref stands for; exists false when it does not stand for one now.
	// render returns the entity of the object (a pointer to its mesh type). Its labels and
	// annotations are the engine's scratch maps (scratchMap): it is valid until the next render.
	render func(e *Engine, ref ObjectRef) (entity any, exists bool)
}

// Find is how a source finds a kind's objects.
type Find uint8

const (
	// FindDefinitions is the CustomResourceDefinitions themselves (cluster-scoped, read
	// without their schemas): they say which kinds play which role.
	FindDefinitions Find = iota
	// FindAlways: Knative's own kind, watched whole from the start, at the version its CRD
	// stores.
	FindAlways
	// FindByCRDLabel: every namespaced kind whose CRD carries CRDLabel "true", watched whole
	// while the CRD is there.
	FindByCRDLabel
	// FindByReference: the kinds that other objects name (subscribers, sinks, replies,
	// dead-letter sinks), watched whole while named: the mesh needs to know of each such
	// object whether it exists, where it receives events and which Backstage id it carries.
	FindByReference
)

// readVerbs are what watching a kind takes.
var readVerbs = []string{"get", "list", "watch"}

// declared lists every kind and role, in the order objects of a batch are best applied
// (definitions first, so kinds are known before their objects). It is never written to.
var declared = []*Kind{&crdKind, &brokerKind, &eventTypeKind, &triggerKind, &subscriptionKind,
	&sequenceKind, &parallelKind, &eventTransformKind, &requestReplyKind, &eventPolicyKind, &jobSinkKind,
	&integrationSinkKind, &channelRole, &sourceRole, &subscriberRole, &sinkRole}

// Kinds lists the declarations, definitions first.
func Kinds() []Kind {
	out := make([]Kind, len(declared))
	for i, k := range declared {
		out[i] = *k
		out[i].Verbs = slices.Clone(k.Verbs)
	}
	return out
}

// KindOf is the declaration of gk; ok is false for a kind not declared, whose objects play
// the roles (channel, source, subscriber) its CRD's labels and references give it.
func KindOf(gk GroupKind) (Kind, bool) {
	if k := declaredKind(gk); k != nil {
		return *k, true
	}
	return Kind{}, false
}

// declaredKind is the declaration of gk, or nil.
func declaredKind(gk GroupKind) *Kind {
	for _, k := range declared {
		if k.GroupKind == gk && gk != (GroupKind{}) {
			return k
		}
	}
	return nil
}

// handling is the declaration whose read, upsert and remove take objects of gk: its own, or
// for any other kind, the one shared by the roles.
func handling(gk GroupKind) *Kind {
	if k := declaredKind(gk); k != nil {
		return k
	}
	return &subscriberRole
}

// entityKinds maps each mesh entity to the declaration that renders it.
var entityKinds = func() map[mesh.EntityKind]*Kind {
	m := map[mesh.EntityKind]*Kind{}
	for _, k := range declared {
		if k.HasEntity {
			m[k.Entity] = k
		}
	}
	return m
}()

// Validate judges a manifest of gk as the API server and Knative's webhooks would, for what
// the mesh reads: label and annotation syntax and size, spec an object, and the fields the
// kind cannot go without. It returns every problem found.
func Validate(u *unstructured.Unstructured) field.ErrorList {
	errs := validateMeta(u)
	spec, hasSpec := u.Object["spec"]
	specMap, isMap := spec.(map[string]any)
	if hasSpec && !isMap {
		errs = append(errs, field.Invalid(field.NewPath("spec"), describeValue(spec), "must be an object"))
	}
	if k := declaredKind(RefOf(u).groupKind()); k != nil && k.validate != nil {
		errs = append(errs, k.validate(specMap, u)...)
	}
	return errs
}
