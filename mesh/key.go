package mesh

import (
	"fmt"
	"strings"
)

// Key identifies an entity: the group, kind, namespace and name of the object it stands for.
// Its string form, group/Kind/namespace/name, is an event's subject and an MQTT topic's tail.
// It is comparable, so it keys maps.
type Key struct {
	Group, Kind, Namespace, Name string
}

// String is the key's wire form, group/Kind/namespace/name (the group of core objects is empty).
func (k Key) String() string {
	return k.Group + "/" + k.Kind + "/" + k.Namespace + "/" + k.Name
}

// NamespacedName is the namespace/name form the entity lists (providedEventTypes) use.
func (k Key) NamespacedName() string { return k.Namespace + "/" + k.Name }

// ParseKey is the inverse of Key.String. Kubernetes names cannot contain '/', so the split is
// unambiguous; the group may be empty (core objects), the kind and name may not.
func ParseKey(s string) (Key, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 4 || parts[1] == "" || parts[3] == "" {
		return Key{}, fmt.Errorf("entity key %q is not group/Kind/namespace/name", s)
	}
	return Key{parts[0], parts[1], parts[2], parts[3]}, nil
}

// Compare orders keys by namespace, name, group, kind: the order of the mesh's entity lists.
func (k Key) Compare(o Key) int {
	if c := strings.Compare(k.Namespace, o.Namespace); c != 0 {
		return c
	}
	if c := strings.Compare(k.Name, o.Name); c != 0 {
		return c
	}
	if c := strings.Compare(k.Group, o.Group); c != 0 {
		return c
	}
	return strings.Compare(k.Kind, o.Kind)
}

// MustParseKey is ParseKey for keys known to be well formed (tests, constants); it panics on
// a malformed one.
func MustParseKey(s string) Key {
	k, err := ParseKey(s)
	if err != nil {
		panic(err)
	}
	return k
}
