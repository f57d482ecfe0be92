package cluster

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync"
)

// refusedByAPIServer lists the cases whose objects the API server itself rejects (the CRD
// schemas validate them), with why. Such a case asserts the rejection instead of the mesh.
var refusedByAPIServer = map[string]string{
	"eventtype-shapes/malformed attributes are reported and the rest applies": "the EventType schema types spec.attributes as a list",
}

// Every relation rule of docs/protocol.md, driven through the API: create, update, delete, label a
// subscriber, change an EventType's type, (re)label and delete channel and source CRDs. Each
// step asserts the exact entity changes, and each case's final GET /v1/getEventMesh equals a
// mesh built from scratch from a fresh listing.
func TestRulesThroughTheAPI(t *testing.T) {
	cfg := testkube.Start(t)
	c := newCluster(t, cfg)
	installServingService(c)
	crds := c.meshCRDs()

	for _, rc := range testkit.RuleCases(t, "../../mesh/engine/testdata/rules/*.yaml") {
		t.Run(rc.Name, func(t *testing.T) {
			c.t = t
			defer func() { c.t = nil }()
			replay(t, c, crds, rc, refusedByAPIServer[rc.Name])
		})
	}
}

// meshCRDs returns the CRDs that make channel and source kinds, as installed.
func (c *cluster) meshCRDs() map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	list, err := c.client.Resource(crdGVR).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	for i := range list.Items {
		crd := &list.Items[i]
		l := crd.GetLabels()
		if l[engine.LabelSubscribable] == "true" || l[engine.LabelSource] == "true" {
			out[crd.GetName()] = crd
		}
	}
	if len(out) == 0 {
		c.t.Fatal("no channel or source CRDs installed")
	}
	return out
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// resetCRDs makes every channel and source CRD exist and say nothing about the mesh, as the
// engine tables start without CRDs: each case labels the ones it uses.
func (c *cluster) resetCRDs(crds map[string]*unstructured.Unstructured) {
	ctx := context.Background()
	for name, orig := range crds {
		_, err := c.client.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			fresh := orig.DeepCopy()
			unstructured.RemoveNestedField(fresh.Object, "metadata", "resourceVersion")
			unstructured.RemoveNestedField(fresh.Object, "metadata", "uid")
			unstructured.RemoveNestedField(fresh.Object, "metadata", "creationTimestamp")
			unstructured.RemoveNestedField(fresh.Object, "metadata", "managedFields")
			unstructured.RemoveNestedField(fresh.Object, "status")
			if _, err := c.client.Resource(crdGVR).Create(ctx, fresh, metav1.CreateOptions{}); err != nil {
				c.t.Fatalf("re-creating CRD %s: %v", name, err)
			}
			c.waitServed(fresh)
		} else if err != nil {
			c.t.Fatal(err)
		}
		c.patchCRDMeta(name, nil, nil)
	}
}

// patchCRDMeta sets the mesh labels and annotation of a CRD to exactly those given.
func (c *cluster) patchCRDMeta(name string, labels, annotations map[string]string) *unstructured.Unstructured {
	meshLabels := map[string]any{engine.LabelSubscribable: nil, engine.LabelSource: nil}
	for k, v := range labels {
		meshLabels[k] = v
	}
	meshAnnotations := map[string]any{engine.AnnotationEventType: nil}
	for k, v := range annotations {
		meshAnnotations[k] = v
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": meshLabels, "annotations": meshAnnotations}})
	u, err := c.client.Resource(crdGVR).Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		c.t.Fatalf("labelling CRD %s: %v", name, err)
	}
	return u
}

// waitServed waits until the kind a CRD defines can be listed.
func (c *cluster) waitServed(crd *unstructured.Unstructured) {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	version, _ := versions[0].(map[string]any)["name"].(string)
	res := c.client.Resource(schema.GroupVersionResource{Group: group, Version: version, Resource: plural})
	testkit.Eventually(c.t, "CRD "+crd.GetName()+" to be served", 30*time.Second, func() bool {
		_, err := res.List(context.Background(), metav1.ListOptions{Limit: 1})
		return err == nil
	})
	c.mapper.Reset()
}

// write applies a fixture object through the API. The tables write objects the way the
// engine reads them; the API server wants a little more: it assigns uids itself, a core
// Service needs a spec, and a CRD fixture only carries the labels and annotations a case
// changes on the installed CRD.
func (c *cluster) write(obj map[string]any) (*unstructured.Unstructured, error) {
	u := (&unstructured.Unstructured{Object: obj}).DeepCopy()
	unstructured.RemoveNestedField(u.Object, "metadata", "uid")
	switch u.GroupVersionKind().GroupKind() {
	case schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
		return c.patchCRDMeta(u.GetName(), u.GetLabels(), u.GetAnnotations()), nil
	case schema.GroupKind{Kind: "Service"}:
		if _, ok := u.Object["spec"]; !ok {
			u.Object["spec"] = map[string]any{"type": "ExternalName", "externalName": "example.com"}
		}
	}
	return c.apply(u.Object)
}

func replay(t *testing.T, c *cluster, crds map[string]*unstructured.Unstructured, rc testkit.RuleCase, refusal string) {
	c.resetCRDs(crds)
	var created []engine.ObjectRef
	defer func() {
		for _, ref := range created {
			c.remove(engine.ObjectRef(ref))
		}
	}()
	write := func(obj map[string]any) (*unstructured.Unstructured, bool) {
		t.Helper()
		u, err := c.write(obj)
		if refusal != "" && err != nil {
			t.Logf("refused as expected (%s): %v", refusal, err)
			return nil, false
		}
		if err != nil {
			t.Fatalf("writing %v: %v", obj["metadata"], err)
		}
		if ref := engine.RefOf(u); ref.Group != engine.GroupCRD {
			created = append(created, ref)
		}
		return u, true
	}
	for _, obj := range rc.Objects {
		if _, ok := write(obj); !ok {
			return
		}
	}
	if refusal != "" {
		t.Fatalf("the API server accepted every object; %q no longer holds", refusal)
	}
	r := startSource(t, c.cfg)
	r.graph = rc.Graph
	checkEntities(t, "initial objects", r.hub.Snapshot(), rc.Want, rc.Absent, rc.Shows)
	r.takeChanges()
	for i, s := range rc.Steps {
		for _, obj := range s.Apply {
			u, _ := write(obj)
			r.waitSeen(u)
		}
		for _, key := range s.Delete {
			ref, err := mesh.ParseKey(key)
			if err != nil {
				t.Fatal(err)
			}
			if c.remove(engine.ObjectRef(ref)) {
				r.waitGone(engine.ObjectRef(ref))
			}
		}
		r.settle(len(s.Changes))
		got := r.takeChanges()
		if s.Changes != nil && !reflect.DeepEqual(got, s.Changes) && !(len(got) == 0 && len(s.Changes) == 0) {
			t.Errorf("step %d: changes\n got %q\nwant %q", i, got, s.Changes)
		}
		checkEntities(t, "step "+strconv.Itoa(i), r.hub.Snapshot(), s.Want, s.Absent, rc.Shows)
	}
	checkProblems(t, r.logs.String(), rc.Problems)
	if got, want := getEventMesh(t, r), rebuilt(t, c, rc); !reflect.DeepEqual(got, want) {
		gotJSON, _ := json.MarshalIndent(got, "", " ")
		wantJSON, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("GET /v1/getEventMesh differs from a mesh built from a fresh listing\n got %s\nwant %s", gotJSON, wantJSON)
	}
}

// getEventMesh asks the resync endpoint of the running source's hub.
func getEventMesh(t *testing.T, r *running) mesh.EventMesh {
	t.Helper()
	h, err := resync.New(r.hub)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/getEventMesh")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/getEventMesh: %s: %s", resp.Status, body)
	}
	var m mesh.EventMesh
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// rebuilt is the mesh of a fresh engine given a fresh listing of every CRD and every kind the
// case uses.
func rebuilt(t *testing.T, c *cluster, rc testkit.RuleCase) mesh.EventMesh {
	t.Helper()
	kinds := map[schema.GroupKind]bool{{Group: engine.GroupCRD, Kind: engine.KindCRDObject}: true}
	note := func(objs []map[string]any) {
		for _, o := range objs {
			kinds[(&unstructured.Unstructured{Object: o}).GroupVersionKind().GroupKind()] = true
		}
	}
	note(rc.Objects)
	for _, s := range rc.Steps {
		note(s.Apply)
	}
	var objs []*unstructured.Unstructured
	for gk := range kinds {
		res, _ := c.resource(gk)
		list, err := res.List(context.Background(), metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			continue // its CRD was deleted
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := range list.Items {
			objs = append(objs, &list.Items[i])
		}
	}
	e := engine.New("rebuild")
	e.Apply(engine.Listing(objs...))
	m, err := e.Snapshot().EventMesh()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func checkProblems(t *testing.T, logs string, want []string) {
	t.Helper()
	var reported []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "object partly ignored") {
			reported = append(reported, strings.ReplaceAll(line, `\"`, `"`))
		}
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(reported, "\n"), w) {
			t.Errorf("problems %q do not mention %q", reported, w)
		}
	}
	if want == nil && len(reported) > 0 {
		t.Errorf("unexpected problems: %q", reported)
	}
}

// checkEntities asserts the fields the tables list. uid is the API server's to assign, so
// only its presence is checked.
func checkEntities(t *testing.T, when string, snap mesh.State, want map[string]map[string]string, absent []string,
	shows func(mesh.EntityKind) bool) {
	t.Helper()
	entities := map[string]json.RawMessage{}
	for _, c := range snap.Latest() {
		if shows(c.Kind) {
			entities[c.Key.String()] = c.Entity
		}
	}
	testkit.CheckEntities(t, when, entities, want, absent, true)
}
