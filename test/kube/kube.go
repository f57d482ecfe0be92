// Package kube starts a real Kubernetes API server (kube-apiserver + etcd built from pinned Go
// modules by test/tools/apiserver/build.sh, driven by controller-runtime's envtest) with the
// real Knative Eventing CRDs from the knative.dev/eventing module, for end-to-end tests.
//
// The CRDs are installed with conversion strategy None: their conversion webhook does not run
// here, so each object reads back as it was written, whatever version is asked for. EventType
// specs are also kept unpruned (keepEveryShape), so both its v1beta2 and v1beta3 shapes survive.
package kube

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	_ "knative.dev/eventing/config/core/resources" // keeps the module (and its CRD files) in go.mod

	"github.com/event-mesh-broadcaster/broadcaster/source/manifests"
)

// Start runs an API server for the test and returns an admin rest.Config; it stops with the test.
func Start(t testing.TB, opts ...ServerOption) *rest.Config { return StartServer(t, opts...).Config }

// ServerOption changes how StartServer sets the API server up.
type ServerOption func(*serverOptions)

type serverOptions struct{ asShipped bool }

// AsShipped installs the EventType CRD with its schemas as shipped, so the API server prunes
// every field the requested version's schema lacks, as a cluster without the conversion
// webhook (conversion strategy None) does. By default EventType specs keep every field (see
// keepEveryShape).
func AsShipped() ServerOption { return func(o *serverOptions) { o.asShipped = true } }

// Server is a running test API server.
type Server struct {
	// Config is an admin client configuration (client certificates).
	Config *rest.Config
	env    *envtest.Environment
}

// StartServer runs an API server for the test; it stops with the test.
func StartServer(t testing.TB, opts ...ServerOption) *Server {
	t.Helper()
	var o serverOptions
	for _, opt := range opts {
		opt(&o)
	}
	crds, err := knativeCRDs(!o.asShipped)
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: binaries(t), CRDs: crds, ErrorIfCRDPathMissing: true}
	// A certificate folder of our own survives a restart of the API server, so clients keep
	// trusting it (envtest regenerates certificates in folders it made itself).
	env.ControlPlane.APIServer = &envtest.APIServer{CertDir: t.TempDir()}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the API server: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the API server: %v", err)
		}
	})
	return &Server{Config: cfg, env: env}
}

// RestartAPIServer kills kube-apiserver (a crash: it gets no chance to end watches
// gracefully, which with open watches it would take over 20 s to do), waits down, and starts
// it again on the same address with the same certificates. etcd, and so every object, stays;
// every watch breaks, and the new API server's watch cache starts afresh.
func (s *Server) RestartAPIServer(t testing.TB, down time.Duration) {
	t.Helper()
	api := s.env.ControlPlane.GetAPIServer()
	if err := killProcessWithArg("kube-apiserver", "--cert-dir="+api.CertDir); err != nil {
		t.Fatal(err)
	}
	if err := api.Stop(); err != nil {
		t.Fatalf("stopping kube-apiserver: %v", err)
	}
	time.Sleep(down)
	if err := api.Start(); err != nil {
		t.Fatalf("restarting kube-apiserver: %v", err)
	}
}

// killProcessWithArg sends SIGKILL to the process named name whose command line has arg.
func killProcessWithArg(name, arg string) error {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(string(raw), "\x00")
		if filepath.Base(args[0]) != name || !slices.Contains(args, arg) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err != nil {
			continue
		}
		return syscall.Kill(pid, syscall.SIGKILL)
	}
	return fmt.Errorf("no %s process with %s", name, arg)
}

// binaries builds (first time only) and returns the folder with kube-apiserver and etcd.
func binaries(t testing.TB) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "..", "tools", "apiserver", "build.sh")
	cmd := exec.Command("bash", script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("building kube-apiserver and etcd (%s): %v", script, err)
	}
	return strings.TrimSpace(string(out))
}

// keepEveryShape stops the API server from pruning EventType specs to the storage version's
// schema. Without the conversion webhook, a v1beta3 EventType (spec.attributes) stored as
// v1beta2 would lose its attributes, and a v1beta2 one read at v1beta3 keeps spec.type only
// because nothing prunes on read. With the webhook, a real cluster converts between the two
// shapes; here each object keeps the shape it was written in, so the tests see both.
func keepEveryShape(crd *apiextensionsv1.CustomResourceDefinition) {
	for i := range crd.Spec.Versions {
		v := &crd.Spec.Versions[i]
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		spec, ok := v.Schema.OpenAPIV3Schema.Properties["spec"]
		if !ok {
			continue
		}
		preserve := true
		spec.XPreserveUnknownFields = &preserve
		v.Schema.OpenAPIV3Schema.Properties["spec"] = spec
	}
}

// KnativeCRDs are the CRDs of the pinned knative.dev/eventing module (its core and the
// in-memory channel's), as a cluster test installs them.
func KnativeCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) { return knativeCRDs(false) }

// knativeCRDs reads the eventing module's core CRDs and the in-memory channel's, with
// conversion strategy None (no webhook runs here).
func knativeCRDs(keepEventTypeShapes bool) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "knative.dev/eventing").Output()
	if err != nil {
		return nil, fmt.Errorf("locating knative.dev/eventing: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	var files []string
	for _, d := range []string{"config/core/resources", "config/channels/in-memory-channel/resources"} {
		matches, _ := filepath.Glob(filepath.Join(dir, d, "*.yaml"))
		files = append(files, matches...)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		objs, err := manifests.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" {
				continue
			}
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := k8sruntime.DefaultUnstructuredConverter.FromUnstructured(o.Object, crd); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter}
			if crd.Name == "eventtypes.eventing.knative.dev" && keepEventTypeShapes {
				keepEveryShape(crd)
			}
			crds = append(crds, crd)
		}
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CRDs found under %s", dir)
	}
	return crds, nil
}
