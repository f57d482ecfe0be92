package engine

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Every declaration says all a source, the engine and the wire need of its kind, so a kind
// added in one file is complete there: found somehow, read and applied, and each mesh entity
// rendered by exactly one declaration.
func TestDeclarationsAreComplete(t *testing.T) {
	t.Parallel()
	rendered := map[mesh.EntityKind]string{}
	seen := map[GroupKind]string{}
	for _, k := range declared {
		t.Run(k.Name, func(t *testing.T) {
			if len(k.Verbs) == 0 {
				t.Error("no API verbs: the cluster source could not be granted its kind")
			}
			switch k.Find {
			case FindDefinitions, FindAlways:
				if k.GroupKind == (GroupKind{}) {
					t.Error("a kind found by name has no GroupKind")
				}
			case FindByCRDLabel:
				if k.CRDLabel == "" || k.GroupKind != (GroupKind{}) {
					t.Errorf("a role found by CRD label has label %q and kind %v; want a label and no kind", k.CRDLabel, k.GroupKind)
				}
			case FindByReference:
				if k.GroupKind != (GroupKind{}) {
					t.Error("a role found by reference has a kind")
				}
			default:
				t.Errorf("find %d unknown", k.Find)
			}
			// Objects of undeclared kinds are read by one declaration (handling's); the other
			// roles only render what those objects stand for.
			if k.GroupKind != (GroupKind{}) || k == handling(GroupKind{"example.com", "Undeclared"}) {
				if k.read == nil || k.upsert == nil || k.remove == nil {
					t.Error("objects of the kind cannot be read and applied (read, upsert, remove)")
				}
				if other, dup := seen[k.GroupKind]; dup {
					t.Errorf("declared twice, also as %s", other)
				}
				seen[k.GroupKind] = k.Name
			}
			if k.HasEntity {
				if k.render == nil {
					t.Error("stands for an entity it does not render")
				}
				if other, dup := rendered[k.Entity]; dup {
					t.Errorf("entity %s rendered by %s too", k.Entity, other)
				}
				rendered[k.Entity] = k.Name
			}
		})
	}
	for _, kind := range mesh.EntityKinds() {
		if rendered[kind] == "" {
			t.Errorf("no declaration renders the %s entity", kind)
		}
	}
	if len(kindsFound(FindDefinitions)) != 1 || declared[0].Find != FindDefinitions {
		t.Error("the definitions must be declared once, first: kinds are known before their objects")
	}
}

func kindsFound(find Find) []*Kind {
	var out []*Kind
	for _, k := range declared {
		if k.Find == find {
			out = append(out, k)
		}
	}
	return out
}

// Objects of a declared kind go to its declaration; objects of any other kind are read as
// the roles read them, and cluster-scoped ones other than definitions are not read at all.
func TestParseRoutesByDeclaration(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, apiVersion, kind, namespace string
		want                              *Kind
	}{
		{"a Broker", "eventing.knative.dev/v1", "Broker", "ns", &brokerKind},
		{"a Trigger", "eventing.knative.dev/v1", "Trigger", "ns", &triggerKind},
		{"an EventType of any version", "eventing.knative.dev/v1beta3", "EventType", "ns", &eventTypeKind},
		{"a Subscription", "messaging.knative.dev/v1", "Subscription", "ns", &subscriptionKind},
		{"a Sequence", "flows.knative.dev/v1", "Sequence", "ns", &sequenceKind},
		{"a Parallel", "flows.knative.dev/v1", "Parallel", "ns", &parallelKind},
		{"an EventTransform", "eventing.knative.dev/v1alpha1", "EventTransform", "ns", &eventTransformKind},
		{"a RequestReply", "eventing.knative.dev/v1alpha1", "RequestReply", "ns", &requestReplyKind},
		{"an EventPolicy", "eventing.knative.dev/v1alpha1", "EventPolicy", "ns", &eventPolicyKind},
		{"a JobSink", "sinks.knative.dev/v1alpha1", "JobSink", "ns", &jobSinkKind},
		{"an IntegrationSink", "sinks.knative.dev/v1alpha1", "IntegrationSink", "ns", &integrationSinkKind},
		{"a sink of any kind", "serving.knative.dev/v1", "Service", "ns", &subscriberRole},
		{"a CRD", "apiextensions.k8s.io/v1", "CustomResourceDefinition", "", &crdKind},
		{"a channel, source or subscriber", "sources.knative.dev/v1", "PingSource", "ns", &subscriberRole},
		{"a cluster-scoped object", "rbac.authorization.k8s.io/v1", "ClusterRole", "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := Parse(object(tt.apiVersion, tt.kind, tt.namespace, "x"))
			if p.kind != tt.want {
				t.Errorf("read by %v, want %v", nameOf(p.kind), nameOf(tt.want))
			}
		})
	}
}

func nameOf(k *Kind) string {
	if k == nil {
		return "nothing"
	}
	return k.Name
}

func object(apiVersion, kind, namespace, name string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": namespace}}}
}

// TestKindsAreNamedByTheirDeclarationOnly walks the module's code (tests aside) and checks
// that adding a kind is its declaration plus its tests: no source, hub, transport, command or
// other part of the engine names a declared Kubernetes kind (its Kind as a string) but the
// kind's own kind_<name>.go, and the entities of the event graph that only pass events on are
// named (mesh.Kind<X>) by their declaration, the contract that fixes their wire form (package
// mesh) and the lineage walk that says how events pass through them, nothing else.
func TestKindsAreNamedByTheirDeclarationOnly(t *testing.T) {
	root := filepath.Join("..", "..")
	byKind := map[string]string{} // Kind → its declaration's file, once seen
	for _, k := range Kinds() {
		if k.GroupKind != (GroupKind{}) {
			byKind[k.GroupKind.Kind] = ""
		}
	}
	relaying := map[string]bool{}
	for _, k := range mesh.EntityKinds() {
		if !k.Upstream() && k != mesh.KindEventPolicy && k != mesh.KindSink {
			relaying["Kind"+k.Title()] = true
		}
	}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			// Test harnesses (test/, testkit-like packages) write fixtures of every kind.
			name := d.Name()
			if name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") && rel != "." ||
				filepath.ToSlash(rel) == "test" || strings.HasSuffix(name, "test") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		if dir == "mesh" {
			return nil // the contract: the wire names and titles of every kind
		}
		declaration := dir == "mesh/engine" && strings.HasPrefix(filepath.Base(path), "kind_")
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				kind, err := strconv.Unquote(n.Value)
				if n.Kind != token.STRING || err != nil {
					return true
				}
				if file, declared := byKind[kind]; declared {
					switch {
					case !declaration:
						t.Errorf("%s names the kind %q: only its declaration may", fset.Position(n.Pos()), kind)
					case file != "" && file != path:
						t.Errorf("%s and %s both name the kind %q: one file declares a kind", file, fset.Position(n.Pos()), kind)
					default:
						byKind[kind] = path
					}
				}
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && x.Name == "mesh" && relaying[n.Sel.Name] && !declaration && dir != "mesh/lineage" {
					t.Errorf("%s names mesh.%s: only its declaration, the contract and the lineage walk may", fset.Position(n.Pos()), n.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for kind, file := range byKind {
		if file == "" {
			t.Errorf("no declaration names the kind %q: is the walk looking at the module?", kind)
		}
	}
}
