package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/settings"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/test/kube"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/httpsink"
)

const (
	deployDir     = repoRoot + "/deploy"
	kustomization = deployDir + "/Kustomization"
	namespace     = "knative-eventing"
	imageRepo     = "ghcr.io/event-mesh-broadcaster/broadcaster"
	// kustomizeVersion is the kustomize that `kubectl apply -k` embeds in current kubectl
	// releases, built from the Go module proxy so the test needs no kubectl on the machine.
	kustomizeVersion = "v5.8.1"
)

// kustomizationFile is the part of deploy/Kustomization these tests read.
type kustomizationFile struct {
	Namespace string   `json:"namespace"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// decodeAll reads every document of a multi-document YAML (or JSON) stream.
func decodeAll(t *testing.T, what string, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if obj != nil {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeAll(t, path, data)
}

// find returns the one object of kind and name in objs, converted to into.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string, into any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return
		}
	}
	t.Fatalf("no %s %s", kind, name)
}

func readKustomization(t *testing.T) kustomizationFile {
	t.Helper()
	raw, err := os.ReadFile(kustomization)
	if err != nil {
		t.Fatal(err)
	}
	var k kustomizationFile
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatalf("%s: %v", kustomization, err)
	}
	return k
}

// The image of deploy/ is one versioned reference everywhere: the Deployment, the
// kustomization's images, build-image.sh's default repository and the deploy README.
func versionedImage(t *testing.T) string {
	t.Helper()
	k := readKustomization(t)
	if len(k.Images) != 1 || k.Images[0].Name != imageRepo || k.Images[0].NewName != "" ||
		!regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(k.Images[0].NewTag) {
		t.Fatalf("%s images: %+v, want one entry for %s with a vX.Y.Z newTag", kustomization, k.Images, imageRepo)
	}
	return imageRepo + ":" + k.Images[0].NewTag
}

// `kustomize build deploy` (what `kubectl apply -k deploy` runs) builds exactly the objects of deploy/*.yaml (every manifest is a
// resource of the kustomization and every resource is a manifest there, so `kubectl apply -k`
// and `kubectl apply -f` install the same), all of known kinds, the namespaced ones in
// knative-eventing, the Deployment running the versioned image the docs and the build script name.
func TestKustomization(t *testing.T) {
	t.Parallel()
	k := readKustomization(t)
	manifests, err := filepath.Glob(filepath.Join(deployDir, "*.yaml"))
	if err != nil || len(manifests) == 0 {
		t.Fatalf("no manifests in %s: %v", deployDir, err)
	}
	var names []string
	for _, m := range manifests {
		names = append(names, filepath.Base(m))
	}
	sort.Strings(names)
	resources := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(names, resources) {
		t.Errorf("%s resources %q, want every manifest of deploy/: %q", kustomization, resources, names)
	}
	if k.Namespace != namespace {
		t.Errorf("%s namespace %q, want %q", kustomization, k.Namespace, namespace)
	}
	image := versionedImage(t)

	var want []string // kind/namespace/name of every object in the manifests
	for _, r := range k.Resources {
		for _, o := range readObjects(t, filepath.Join(deployDir, r)) {
			want = append(want, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
		}
	}

	kustomize := testkit.GoInstall(t, "sigs.k8s.io/kustomize/kustomize/v5", kustomizeVersion)
	cmd := exec.Command(kustomize, "build", deployDir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build deploy: %v\n%s", err, stderr.String())
	}
	objs := decodeAll(t, "kustomize build output", out)
	known := map[string]bool{ // kind → namespaced
		"ServiceAccount": true, "ClusterRole": false, "ClusterRoleBinding": false, "Role": true,
		"RoleBinding": true, "ConfigMap": true, "Deployment": true, "Service": true,
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
		namespaced, ok := known[o.GetKind()]
		switch {
		case !ok:
			t.Errorf("kustomize built a %s %s: not a kind deploy/ is known to need", o.GetKind(), o.GetName())
		case namespaced && o.GetNamespace() != namespace:
			t.Errorf("%s %s is in namespace %q, want %q", o.GetKind(), o.GetName(), o.GetNamespace(), namespace)
		case !namespaced && o.GetNamespace() != "":
			t.Errorf("cluster-scoped %s %s has namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	if !sameSet(got, want) {
		t.Errorf("kustomize build deploy built %q, want the objects of the manifests %q", got, want)
	}

	var built, raw appsv1.Deployment
	find(t, objs, "Deployment", "event-mesh-broadcaster", &built)
	find(t, readObjects(t, filepath.Join(deployDir, "deployment.yaml")), "Deployment", "event-mesh-broadcaster", &raw)
	for what, d := range map[string]appsv1.Deployment{"kustomize build": built, "deployment.yaml": raw} {
		if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
			t.Errorf("%s runs image %q, want %q (kustomization images)", what, got, image)
		}
	}
	for _, doc := range []string{deployDir + "/README.md", repoRoot + "/README.md"} {
		if text, err := os.ReadFile(doc); err != nil || !strings.Contains(string(text), image) {
			t.Errorf("%s does not name the image %s (%v)", doc, image, err)
		}
	}
	script, err := os.ReadFile(filepath.Join(deployDir, "build-image.sh"))
	if err != nil || !strings.Contains(string(script), "IMAGE=${IMAGE:-"+imageRepo+"}") {
		t.Errorf("deploy/build-image.sh does not default IMAGE to %s (%v)", imageRepo, err)
	}

	// What the docs promise an overlay: another namespace and image, the bindings following.
	overlay := t.TempDir()
	absDeploy, err := filepath.Abs(deployDir)
	if err != nil {
		t.Fatal(err)
	}
	base, err := filepath.Rel(overlay, absDeploy) // kustomize takes no absolute bases
	if err != nil {
		t.Fatal(err)
	}
	const otherNS, otherImage = "mesh-system", "registry.example.com/broadcaster:v9.9.9"
	err = os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(`resources: [`+base+`]
namespace: `+otherNS+`
images:
  - {name: `+imageRepo+`, newName: registry.example.com/broadcaster, newTag: v9.9.9}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(kustomize, "build", overlay)
	stderr.Reset()
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build of an overlay: %v\n%s", err, stderr.String())
	}
	moved := decodeAll(t, "overlay output", out)
	for _, o := range moved {
		if known[o.GetKind()] && o.GetNamespace() != otherNS {
			t.Errorf("overlay: %s %s stays in namespace %q, want %q", o.GetKind(), o.GetName(), o.GetNamespace(), otherNS)
		}
		subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
		for _, s := range subjects {
			if s, _ := s.(map[string]any); s["namespace"] != otherNS {
				t.Errorf("overlay: %s %s binds %v, want the ServiceAccount in %q", o.GetKind(), o.GetName(), s, otherNS)
			}
		}
	}
	var movedDeployment appsv1.Deployment
	find(t, moved, "Deployment", "event-mesh-broadcaster", &movedDeployment)
	if got := movedDeployment.Spec.Template.Spec.Containers[0].Image; got != otherImage {
		t.Errorf("overlay: image %q, want %q", got, otherImage)
	}
}

// The settings file of deploy/configmap.yaml, mounted where the Deployment's --config points,
// loads through config.Load with the Deployment's own arguments and the environment a pod bound
// by examples/sinkbinding.yaml gets: every value of the file is in effect, the arguments win,
// and the file leaves the SinkBinding's K_SINK and K_CE_OVERRIDES in force.
func TestConfigMapLoads(t *testing.T) {
	t.Parallel()
	objs := readObjects(t, filepath.Join(deployDir, "configmap.yaml"))
	var cm corev1.ConfigMap
	var deployment appsv1.Deployment
	find(t, objs, "ConfigMap", "event-mesh-broadcaster", &cm)
	find(t, readObjects(t, filepath.Join(deployDir, "deployment.yaml")), "Deployment", "event-mesh-broadcaster", &deployment)

	// Where the pod finds the file: the --config argument, a mount of a volume of this ConfigMap.
	ctr := deployment.Spec.Template.Spec.Containers[0]
	var configPath string
	for _, a := range ctr.Args {
		if p, ok := strings.CutPrefix(a, "--config="); ok {
			configPath = p
		}
	}
	if configPath == "" {
		t.Fatalf("container args %q pass no --config=FILE", ctr.Args)
	}
	var key string
	for _, m := range ctr.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, configPath)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range deployment.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
				key = rel
			}
		}
	}
	settingsYAML, ok := cm.Data[key]
	if key == "" || !ok {
		t.Fatalf("--config=%s is not a key of ConfigMap %s mounted into the container (mounts %+v)", configPath, cm.Name, ctr.VolumeMounts)
	}

	var binding struct {
		Spec struct {
			CEOverrides map[string]any `json:"ceOverrides"`
		} `json:"spec"`
	}
	find(t, readObjects(t, filepath.Join(repoRoot, "examples", "sinkbinding.yaml")), "SinkBinding", "event-mesh-broadcaster", &binding)
	overrides, err := json.Marshal(binding.Spec.CEOverrides)
	if err != nil {
		t.Fatal(err)
	}
	const sink = "http://broker-ingress.knative-eventing.svc.cluster.local/knative-eventing/event-mesh"
	env := map[string]string{ // what Kubernetes, the downward API and the SinkBinding set
		"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
		"POD_NAMESPACE": namespace, "POD_IP": "10.244.0.7",
		"K_SINK": sink, "K_CE_OVERRIDES": string(overrides),
	}
	for _, e := range ctr.Env {
		if e.Value != "" {
			env[e.Name] = e.Value
		}
	}
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(settingsYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	args := slices.Clone(ctr.Args)
	args[slices.Index(args, "--config="+configPath)] = "--config=" + file
	cfg, err := config.Load(args, func(k string) string { return env[k] }, settings.All())
	if err != nil {
		t.Fatalf("config.Load(%q) with the ConfigMap's file: %v", args, err)
	}

	// Every setting of the file is in effect: its value comes from the file, unless the
	// Deployment's args or the pod's environment give it.
	var inFile map[string]any
	if err := yaml.Unmarshal([]byte(settingsYAML), &inFile); err != nil {
		t.Fatal(err)
	}
	keys := leafKeys("", inFile)
	if len(keys) == 0 {
		t.Fatal("the ConfigMap's settings file sets nothing")
	}
	for _, k := range keys {
		if origin := cfg.Origin(k); !strings.HasPrefix(origin, file+":") {
			t.Errorf("%s: set in the file, but in effect from %s", k, origin)
		}
	}
	if !cfg.InCluster || !cfg.LeaderElect || cfg.Listen != ":8080" || cfg.LeaderElectionNamespace != namespace {
		t.Errorf("in effect: in-cluster %v, leader election %v in %q, listen %q; want the Deployment's args in force",
			cfg.InCluster, cfg.LeaderElect, cfg.LeaderElectionNamespace, cfg.Listen)
	}
	var http *httpsink.Settings
	for _, p := range cfg.Parts() {
		if s, ok := p.(*httpsink.Settings); ok {
			http = s
		}
	}
	if http == nil || http.Sink != sink || http.CEOverrides != string(overrides) {
		t.Errorf("sink settings %+v in effect, want the SinkBinding's K_SINK %q and K_CE_OVERRIDES %q", http, sink, overrides)
	}
}

// leafKeys lists the dotted keys of a settings file's values.
func leafKeys(prefix string, m map[string]any) []string {
	var keys []string
	for k, v := range m {
		if prefix != "" {
			k = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			keys = append(keys, leafKeys(k, sub)...)
		} else {
			keys = append(keys, k)
		}
	}
	return keys
}

// reference is a Knative reference as the manifests write it.
type reference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Namespace  string `json:"namespace"`
}

// sinkBinding is what the tests read of a SinkBinding.
type sinkBinding struct {
	APIVersion string `json:"apiVersion"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Subject reference `json:"subject"`
		Sink    struct {
			Ref reference `json:"ref"`
		} `json:"sink"`
	} `json:"spec"`
}

// examples/sinkbinding.yaml binds the Deployment of deploy/ to the Broker it defines.
func TestSinkBindingExample(t *testing.T) {
	t.Parallel()
	objs := readObjects(t, filepath.Join(repoRoot, "examples", "sinkbinding.yaml"))
	var deployment appsv1.Deployment
	find(t, readObjects(t, filepath.Join(deployDir, "deployment.yaml")), "Deployment", "event-mesh-broadcaster", &deployment)
	var binding sinkBinding
	find(t, objs, "SinkBinding", "event-mesh-broadcaster", &binding)
	if binding.APIVersion != "sources.knative.dev/v1" {
		t.Errorf("SinkBinding apiVersion %q, want sources.knative.dev/v1", binding.APIVersion)
	}
	subject := binding.Spec.Subject
	if subject.APIVersion != "apps/v1" || subject.Kind != "Deployment" || subject.Name != deployment.Name ||
		binding.Metadata.Namespace != deployment.Namespace {
		t.Errorf("SinkBinding in %q binds %+v, want the Deployment %s/%s of deploy/", binding.Metadata.Namespace, subject, deployment.Namespace, deployment.Name)
	}
	sink := binding.Spec.Sink.Ref
	sinkNamespace := cmpOr(sink.Namespace, binding.Metadata.Namespace)
	var broker unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Broker" && o.GetName() == sink.Name && o.GetNamespace() == sinkNamespace {
			broker = *o
		}
	}
	if sink.APIVersion != "eventing.knative.dev/v1" || sink.Kind != "Broker" || broker.Object == nil {
		t.Errorf("SinkBinding sinks into %+v, want a Broker the example defines", sink)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// deploy/backstage/app-config.yaml configures the integrations/backstage module with keys its
// config.d.ts declares, against the Service of deploy/.
func TestBackstageAppConfig(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(deployDir, "backstage", "app-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var appConfig struct {
		Catalog struct {
			Providers struct {
				KnativeEventMesh map[string]map[string]any `json:"knativeEventMesh"`
			} `json:"providers"`
		} `json:"catalog"`
	}
	if err := yaml.Unmarshal(raw, &appConfig); err != nil {
		t.Fatal(err)
	}
	providers := appConfig.Catalog.Providers.KnativeEventMesh
	if len(providers) == 0 {
		t.Fatal("no catalog.providers.knativeEventMesh.<id> in the snippet")
	}

	// The keys the module declares: the property names of config.d.ts.
	decl, err := os.ReadFile(filepath.Join(repoRoot, "integrations", "backstage", "config.d.ts"))
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*(\w+)\??:`).FindAllStringSubmatch(string(decl), -1) {
		declared[m[1]] = true
	}
	if !declared["baseUrl"] || !declared["knativeEventMesh"] {
		t.Fatalf("config.d.ts declares %v: no baseUrl or knativeEventMesh, has the module's configuration moved?", declared)
	}

	var service corev1.Service
	find(t, readObjects(t, filepath.Join(deployDir, "service.yaml")), "Service", "event-mesh-broadcaster", &service)
	wantHost := service.Name + "." + service.Namespace + ".svc"
	for id, p := range providers {
		for k, v := range p {
			if !declared[k] {
				t.Errorf("%s.%s: not a key of integrations/backstage/config.d.ts", id, k)
			}
			if sub, ok := v.(map[string]any); ok && k == "push" {
				for k2 := range sub {
					if !declared[k2] {
						t.Errorf("%s.push.%s: not a key of integrations/backstage/config.d.ts", id, k2)
					}
				}
			}
		}
		baseURL, _ := p["baseUrl"].(string)
		u, err := url.Parse(baseURL)
		if err != nil || u.Scheme != "http" || u.Hostname() != wantHost || cmpOr(u.Port(), "80") != "80" ||
			service.Spec.Ports[0].Port != 80 {
			t.Errorf("%s.baseUrl %q, want http://%s (the Service of deploy/, port %d)", id, baseURL, wantHost, service.Spec.Ports[0].Port)
		}
		if _, ok := p["tokenFile"]; !ok {
			if _, ok := p["token"]; !ok {
				t.Errorf("%s: neither token nor tokenFile (the broadcaster in cluster mode requires a token)", id)
			}
		}
	}
}

// The ClusterRole of deploy/ grants every kind the engine declares by name the API verbs its
// declaration says the cluster source uses (the roles' kinds are the operator's to add, as
// deploy/rbac.yaml says), so a kind declared in one file cannot go unwatched in a cluster.
func TestRBACGrantsTheDeclaredKinds(t *testing.T) {
	t.Parallel()
	var rules []rbacv1.PolicyRule
	for _, u := range readObjects(t, filepath.Join(deployDir, "rbac.yaml")) {
		if u.GetKind() != "ClusterRole" {
			continue
		}
		var role rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &role); err != nil {
			t.Fatalf("ClusterRole %s: %v", u.GetName(), err)
		}
		rules = append(rules, role.Rules...)
	}
	granted := func(group, resource, verb string) bool {
		for _, r := range rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
				return true
			}
		}
		return false
	}
	crds, err := kube.KnativeCRDs()
	if err != nil {
		t.Fatal(err)
	}
	plurals := map[engine.GroupKind]string{{Group: engine.GroupCRD, Kind: engine.KindCRDObject}: "customresourcedefinitions"}
	for _, crd := range crds {
		plurals[engine.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}] = crd.Spec.Names.Plural
	}
	checked := 0
	for _, k := range engine.Kinds() {
		if k.GroupKind == (engine.GroupKind{}) {
			continue
		}
		resource, ok := plurals[k.GroupKind] // as the kind's CRD at the pinned Knative version names it
		if !ok {
			t.Errorf("the %s declaration's kind %v has no CRD in the pinned knative.dev/eventing", k.Name, k.GroupKind)
			continue
		}
		for _, verb := range k.Verbs {
			if !granted(k.GroupKind.Group, resource, verb) {
				t.Errorf("deploy/rbac.yaml does not grant %s on %s.%s, which the %s declaration uses", verb, resource, k.GroupKind.Group, k.Name)
			}
		}
		checked++
	}
	if checked < 5 {
		t.Errorf("checked %d declared kinds; the engine declares the CRD, Broker, EventType, Trigger and Subscription", checked)
	}
}

// buildWithComponent is `kustomize build` of an overlay that lists deploy/ as a resource and
// deploy/<component> as a component, as docs/cluster.md tells an operator to write it.
func buildWithComponent(t *testing.T, component string) []*unstructured.Unstructured {
	t.Helper()
	overlay := t.TempDir()
	absDeploy, err := filepath.Abs(deployDir)
	if err != nil {
		t.Fatal(err)
	}
	base, err := filepath.Rel(overlay, absDeploy) // kustomize takes no absolute bases
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"),
		[]byte("resources: ["+base+"]\ncomponents: ["+base+"/"+component+"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kustomize := testkit.GoInstall(t, "sigs.k8s.io/kustomize/kustomize/v5", kustomizeVersion)
	cmd := exec.Command(kustomize, "build", overlay)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build of deploy with deploy/%s: %v\n%s", component, err, stderr.String())
	}
	return decodeAll(t, "deploy with deploy/"+component, out)
}

// deploy/secured, the component of the secured-cluster recipe, builds over deploy/ in an
// overlay: the Deployment sends to the Broker it adds (--sink-ref, a valid reference), the
// sink's Role grants the broadcaster's ServiceAccount exactly a TokenRequest for itself and
// get/watch of that Broker, both by name, and the EventPolicy lets that identity post to it.
// Its Knative objects are of kinds and versions the pinned Knative CRDs serve, with no field
// they would drop.
func TestSecuredComponent(t *testing.T) {
	t.Parallel()
	objs := buildWithComponent(t, "secured")
	checkKnativeSchemas(t, objs)

	var deployment appsv1.Deployment
	find(t, objs, "Deployment", "event-mesh-broadcaster", &deployment)
	var sinkRef string
	for _, a := range deployment.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--sink-ref="); ok {
			sinkRef = v
		}
	}
	ref, err := httpsink.ParseReference(sinkRef)
	if err != nil {
		t.Fatalf("the Deployment's --sink-ref %q: %v", sinkRef, err)
	}
	var broker struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	find(t, objs, "Broker", ref.Name, &broker)
	if ref.Group != "eventing.knative.dev" || ref.Kind != "Broker" || ref.Namespace != namespace || broker.Metadata.Namespace != namespace {
		t.Errorf("--sink-ref %s does not name the Broker the component adds (%+v)", sinkRef, broker.Metadata)
	}

	var role rbacv1.Role
	find(t, objs, "Role", "event-mesh-broadcaster-sink", &role)
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, ResourceNames: []string{deployment.Spec.Template.Spec.ServiceAccountName}, Verbs: []string{"create"}},
		{APIGroups: []string{"eventing.knative.dev"}, Resources: []string{"brokers"}, ResourceNames: []string{ref.Name}, Verbs: []string{"get", "watch"}},
	}
	if !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("the sink's Role grants %+v, want exactly %+v", role.Rules, want)
	}
	var binding rbacv1.RoleBinding
	find(t, objs, "RoleBinding", "event-mesh-broadcaster-sink", &binding)
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0].Name != deployment.Spec.Template.Spec.ServiceAccountName ||
		binding.Subjects[0].Namespace != namespace {
		t.Errorf("the sink's RoleBinding %+v does not bind the Role to the broadcaster's ServiceAccount", binding)
	}

	var policy struct {
		Spec struct {
			To []struct {
				Ref struct {
					Kind string `json:"kind"`
					Name string `json:"name"`
				} `json:"ref"`
			} `json:"to"`
			From []struct {
				Sub string `json:"sub"`
			} `json:"from"`
		} `json:"spec"`
	}
	find(t, objs, "EventPolicy", "event-mesh-broadcaster", &policy)
	identity := "system:serviceaccount:" + namespace + ":" + deployment.Spec.Template.Spec.ServiceAccountName
	if len(policy.Spec.To) != 1 || policy.Spec.To[0].Ref.Kind != "Broker" || policy.Spec.To[0].Ref.Name != ref.Name ||
		len(policy.Spec.From) != 1 || policy.Spec.From[0].Sub != identity {
		t.Errorf("the EventPolicy %+v does not let %s post to the Broker %s", policy.Spec, identity, ref.Name)
	}
}

// deploy/secured/sinkbinding, the SinkBinding variant of the secured-cluster recipe, builds over
// deploy/ in an overlay into deploy/'s objects and exactly three more: the Broker of
// deploy/secured, a SinkBinding of the Deployment to it, and an EventPolicy that lets the
// binding (by reference, so Knative admits the OIDC identity it gives the binding) post to it.
// The Deployment keeps no --sink-ref (with K_SINK it is refused) and no Role is added. Its
// Knative objects are of kinds and versions the pinned Knative CRDs serve, with no field they
// would drop.
func TestSecuredSinkBindingComponent(t *testing.T) {
	t.Parallel()
	objs := buildWithComponent(t, "secured/sinkbinding")
	checkKnativeSchemas(t, objs)

	var want []string
	for _, r := range readKustomization(t).Resources {
		for _, o := range readObjects(t, filepath.Join(deployDir, r)) {
			want = append(want, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
		}
	}
	want = append(want, "Broker/"+namespace+"/event-mesh", "SinkBinding/"+namespace+"/event-mesh-broadcaster",
		"EventPolicy/"+namespace+"/event-mesh-broadcaster-binding")
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
	}
	if !sameSet(got, want) {
		t.Errorf("kustomize built %q, want deploy/'s objects and the Broker, SinkBinding and EventPolicy %q", got, want)
	}

	var deployment appsv1.Deployment
	find(t, objs, "Deployment", "event-mesh-broadcaster", &deployment)
	for _, a := range deployment.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, "--sink") {
			t.Errorf("the Deployment has %s: a SinkBinding's K_SINK and a sink of its own are refused together", a)
		}
	}

	// The Broker is deploy/secured's own, object for object.
	brokerOf := func(objs []*unstructured.Unstructured) *unstructured.Unstructured {
		for _, o := range objs {
			if o.GetKind() == "Broker" {
				return o
			}
		}
		t.Fatal("no Broker")
		return nil
	}
	broker, securedBroker := brokerOf(objs), brokerOf(buildWithComponent(t, "secured"))
	if !reflect.DeepEqual(broker.Object, securedBroker.Object) {
		t.Errorf("the Broker %v differs from deploy/secured's %v", broker.Object, securedBroker.Object)
	}

	var binding sinkBinding
	find(t, objs, "SinkBinding", "event-mesh-broadcaster", &binding)
	if s := binding.Spec.Subject; binding.APIVersion != "sources.knative.dev/v1" || s.APIVersion != "apps/v1" || s.Kind != "Deployment" ||
		s.Name != deployment.Name || cmpOr(s.Namespace, binding.Metadata.Namespace) != deployment.Namespace {
		t.Errorf("the %s SinkBinding in %q binds %+v, want the Deployment %s/%s", binding.APIVersion, binding.Metadata.Namespace, s, deployment.Namespace, deployment.Name)
	}
	if s := binding.Spec.Sink.Ref; s.APIVersion != "eventing.knative.dev/v1" || s.Kind != "Broker" || s.Name != broker.GetName() ||
		cmpOr(s.Namespace, binding.Metadata.Namespace) != broker.GetNamespace() {
		t.Errorf("the SinkBinding sinks into %+v, want the Broker %s/%s", s, broker.GetNamespace(), broker.GetName())
	}

	var policy struct {
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec struct {
			To []struct {
				Ref reference `json:"ref"`
			} `json:"to"`
			From []struct {
				Ref reference `json:"ref"`
				Sub string    `json:"sub"`
			} `json:"from"`
		} `json:"spec"`
	}
	find(t, objs, "EventPolicy", "event-mesh-broadcaster-binding", &policy)
	to := []reference{{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: broker.GetName()}}
	from := reference{APIVersion: binding.APIVersion, Kind: "SinkBinding", Name: binding.Metadata.Name}
	var tos []reference
	for _, e := range policy.Spec.To {
		tos = append(tos, e.Ref)
	}
	if policy.Metadata.Namespace != broker.GetNamespace() || !reflect.DeepEqual(tos, to) { // a policy's targets are in its namespace
		t.Errorf("the EventPolicy in %q applies to %+v, want exactly the Broker %s/%s", policy.Metadata.Namespace, tos, broker.GetNamespace(), broker.GetName())
	}
	if len(policy.Spec.From) != 1 || policy.Spec.From[0].Sub != "" ||
		cmpOr(policy.Spec.From[0].Ref.Namespace, policy.Metadata.Namespace) != binding.Metadata.Namespace ||
		!reflect.DeepEqual(policy.Spec.From[0].Ref, reference{APIVersion: from.APIVersion, Kind: from.Kind, Name: from.Name, Namespace: policy.Spec.From[0].Ref.Namespace}) {
		t.Errorf("the EventPolicy admits %+v, want exactly the SinkBinding %s/%s by reference", policy.Spec.From, binding.Metadata.Namespace, binding.Metadata.Name)
	}
}

// checkKnativeSchemas checks every object of a Knative API group in objs against the pinned
// Knative CRDs: its kind must be served at its version, and it may have no field that the
// version's schema does not know. The API server prunes such a field without a word, so a
// misspelt `from:` would leave an EventPolicy that admits no one.
func checkKnativeSchemas(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	crds, err := kube.KnativeCRDs()
	if err != nil {
		t.Fatal(err)
	}
	type version struct{ group, version, kind string }
	schemas := map[version]*apiextensionsv1.JSONSchemaProps{}
	groups := map[string]bool{}
	for _, crd := range crds {
		groups[crd.Spec.Group] = true
		for _, v := range crd.Spec.Versions {
			if v.Served && v.Schema != nil {
				schemas[version{crd.Spec.Group, v.Name, crd.Spec.Names.Kind}] = v.Schema.OpenAPIV3Schema
			}
		}
	}
	for _, o := range objs {
		gv, err := schema.ParseGroupVersion(o.GetAPIVersion())
		if err != nil {
			t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
			continue
		}
		if !groups[gv.Group] {
			continue
		}
		what := o.GetAPIVersion() + " " + o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
		v1Schema := schemas[version{gv.Group, gv.Version, o.GetKind()}]
		if v1Schema == nil {
			t.Errorf("%s: no pinned Knative CRD serves this kind at this version with a schema", what)
			continue
		}
		var internal apiextensions.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v1Schema, &internal, nil); err != nil {
			t.Fatalf("%s: the CRD's schema: %v", what, err)
		}
		structural, err := structuralschema.NewStructural(&internal)
		if err != nil {
			t.Fatalf("%s: the CRD's schema is not structural: %v", what, err)
		}
		pruned := pruning.PruneWithOptions(o.DeepCopy().Object, structural, true,
			structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
		if len(pruned) > 0 {
			t.Errorf("%s has fields the pinned CRD does not know, which the API server drops: %q", what, pruned)
		}
	}
}
