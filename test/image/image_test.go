package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

const (
	repoRoot = "../.."
	// caBundle is what the image must carry: this machine's system CA certificates.
	caBundle = "/etc/ssl/certs/ca-certificates.crt"
	// golden is the mesh of examples/mesh, kept true by cmd/broadcaster's TestExamples.
	golden = repoRoot + "/cmd/broadcaster/testdata/examples-mesh.json"
)

// containers runs podman and buildah on a store of the test's own (vfs storage, its own root,
// run root and temporary directory), so runs never share images, containers or locks.
type containers struct {
	t     *testing.T
	flags []string // global flags of both tools: where the store is
	extra []string // podman only: cgroups, events and the runtime that work in this sandbox
}

func newContainers(t *testing.T) *containers {
	t.Helper()
	var missing []string
	for _, tool := range []string{"podman", "buildah"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%s not installed: this test builds the image with buildah and runs it with podman "+
			"(Debian: apt-get install -y podman buildah runc)", strings.Join(missing, " and "))
	}
	dir := t.TempDir()
	c := &containers{t: t, flags: []string{
		"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs",
	}}
	c.extra = []string{"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--tmpdir", filepath.Join(dir, "tmp")}
	// crun, podman's default runtime, refuses hosts with cgroup v1 controllers beside a cgroup2
	// mount that has controllers ("cgroups in hybrid mode not supported"), as CI's has; runc
	// runs there, so it is used whenever it is installed.
	if _, err := exec.LookPath("runc"); err == nil {
		c.extra = append(c.extra, "--runtime", "runc")
	}
	return c
}

// podman runs podman with the store's flags and returns its standard output.
func (c *containers) podman(args ...string) (string, error) {
	cmd := exec.Command("podman", append(append(append([]string{}, c.flags...), c.extra...), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func (c *containers) mustPodman(args ...string) string {
	c.t.Helper()
	out, err := c.podman(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// The image deploy/build-image.sh builds, with no network at all, runs as deploy/ runs it (UID
// 65532, read-only root filesystem) on the example mesh mounted read-only, answers /readyz,
// serves exactly the example's mesh, and stops cleanly on SIGTERM. Its contents are the static
// binary, this machine's CA bundle, passwd and group, nothing else; its labels carry the version.
func TestImage(t *testing.T) {
	c := newContainers(t)
	if os.Geteuid() != 0 {
		t.Fatal("run as root: the image is built in a network namespace of its own (unshare --net) to prove it needs no network, and run with host networking")
	}
	// The build below has no network: fetch any module the binary needs first (a no-op when the
	// module cache has them, as on an offline machine that builds).
	list := exec.Command("go", "list", "-deps", "./cmd/broadcaster")
	list.Dir = repoRoot
	if out, err := list.CombinedOutput(); err != nil {
		t.Fatalf("go list -deps ./cmd/broadcaster: %v\n%s", err, out)
	}

	const version = "v0.0.0-imagetest"
	const repo = "localhost/event-mesh-broadcaster-imagetest"
	ctxDir := filepath.Join(t.TempDir(), "context")
	build := exec.Command("unshare", "--net", filepath.Join(repoRoot, "deploy", "build-image.sh"))
	build.Env = append(os.Environ(),
		"VERSION="+version, "IMAGE="+repo, "BUILDER=buildah", "CONTEXT_DIR="+ctxDir,
		"BUILD_FLAGS="+strings.Join(c.flags, " "),
		"GOFLAGS=-mod=readonly", "GOPROXY=off", // nothing fetched: the binary is built from what is here
	)
	var stdout, stderr bytes.Buffer
	build.Stdout, build.Stderr = &stdout, &stderr
	began := time.Now()
	if err := build.Run(); err != nil {
		t.Fatalf("deploy/build-image.sh: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	t.Logf("deploy/build-image.sh (go build and buildah bud, offline) took %v", time.Since(began).Round(time.Millisecond))
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	ref := lines[len(lines)-1]
	if want := repo + ":" + version; ref != want {
		t.Fatalf("build-image.sh printed %q last, want the image reference %q", ref, want)
	}

	checkImageConfig(t, c, ref)
	checkImageFiles(t, c, ref)
	runImage(t, c, ref)

	// The release stamped in at build time is what `broadcaster version` says.
	out := c.mustPodman("run", "--rm", "--network", "host", "--read-only", "--cap-drop", "all",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", ref, "version")
	if !strings.HasPrefix(out, "broadcaster "+version+"\n") {
		t.Errorf("broadcaster version in the image says %q, want the release %s first", out, version)
	}
}

// checkImageConfig reads the image's configuration: user, entry point, labels.
func checkImageConfig(t *testing.T, c *containers, ref string) {
	t.Helper()
	var images []struct {
		Size   int64
		Config struct {
			User       string
			Entrypoint []string
			Labels     map[string]string
		}
	}
	if err := json.Unmarshal([]byte(c.mustPodman("image", "inspect", ref)), &images); err != nil || len(images) != 1 {
		t.Fatalf("podman image inspect %s: %d images, %v", ref, len(images), err)
	}
	img := images[0]
	t.Logf("image size: %.1f MB", float64(img.Size)/1e6)
	if img.Config.User != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532 (deploy/deployment.yaml's runAsUser and runAsGroup)", img.Config.User)
	}
	if !reflect.DeepEqual(img.Config.Entrypoint, []string{"/broadcaster"}) {
		t.Errorf("image entrypoint %q, want [/broadcaster]", img.Config.Entrypoint)
	}
	revision, err := exec.Command("git", "-C", repoRoot, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	for label, want := range map[string]string{
		"org.opencontainers.image.version":  "v0.0.0-imagetest",
		"org.opencontainers.image.revision": strings.TrimSpace(string(revision)),
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.source":   "https://github.com/event-mesh-broadcaster/broadcaster",
		"org.opencontainers.image.title":    "Event Mesh Broadcaster",
	} {
		if got := img.Config.Labels[label]; got != want {
			t.Errorf("label %s = %q, want %q", label, got, want)
		}
	}
	if created := img.Config.Labels["org.opencontainers.image.created"]; created == "" || strings.HasPrefix(created, "1970") {
		t.Errorf("label org.opencontainers.image.created = %q, want the commit's time", created)
	}
}

// checkImageFiles exports the image's file system: exactly the binary (static), the CA bundle,
// passwd and group.
func checkImageFiles(t *testing.T, c *containers, ref string) {
	t.Helper()
	id := strings.TrimSpace(c.mustPodman("create", ref))
	defer c.podman("rm", id)
	export := filepath.Join(t.TempDir(), "rootfs.tar")
	c.mustPodman("export", "-o", export, id)
	f, err := os.Open(export)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wantCA, err := os.ReadFile(caBundle)
	if err != nil {
		t.Fatalf("this machine's CA bundle: %v (Debian: apt-get install ca-certificates)", err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", export, err)
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 { // the runtime's mount points come out empty
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[strings.TrimPrefix(h.Name, "/")] = body
		}
	}
	var names []string
	for name := range files {
		names = append(names, name)
	}
	want := []string{"broadcaster", "etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt"}
	if !sameSet(names, want) {
		t.Errorf("the image holds the files %q, want exactly %q", names, want)
	}
	if !bytes.Equal(files["etc/ssl/certs/ca-certificates.crt"], wantCA) {
		t.Errorf("the image's CA bundle (%d bytes) differs from %s (%d bytes)", len(files["etc/ssl/certs/ca-certificates.crt"]), caBundle, len(wantCA))
	}
	if !strings.Contains(string(files["etc/passwd"]), ":65532:65532:") || !strings.Contains(string(files["etc/group"]), ":65532:") {
		t.Errorf("passwd/group lack UID/GID 65532:\n%s\n%s", files["etc/passwd"], files["etc/group"])
	}
	bin, err := elf.NewFile(bytes.NewReader(files["broadcaster"]))
	if err != nil {
		t.Fatalf("/broadcaster is not an ELF binary: %v", err)
	}
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("/broadcaster is dynamically linked (%v): the scratch image has no libc", p.Type)
		}
	}
}

// runImage runs the image as deploy/ runs it, on a copy of the example mesh (tests beside this
// one edit examples/mesh), checks what it serves and stops it.
func runImage(t *testing.T, c *containers, ref string) {
	t.Helper()
	meshDir := filepath.Join(t.TempDir(), "mesh")
	// A directory of its own (not a 0700 temporary one), readable by the container's user.
	if err := os.CopyFS(meshDir, os.DirFS(filepath.Join(repoRoot, "examples", "mesh"))); err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreeAddr(t) // the container uses the host's network
	began := time.Now()
	id := strings.TrimSpace(c.mustPodman("run", "--detach",
		"--network", "host", "--read-only", "--cap-drop", "all",
		// The sandbox may not raise limits: keep both below any host's hard limit.
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
		"--volume", meshDir+":/etc/event-mesh-broadcaster/mesh:ro",
		ref, "--manifests", "/etc/event-mesh-broadcaster/mesh", "--listen", addr))
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := c.podman("logs", id)
			t.Logf("container logs:\n%s", logs)
		}
		if _, err := c.podman("rm", "--force", id); err != nil {
			t.Error(err)
		}
	})

	base := "http://" + addr
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			state, _ := c.podman("inspect", "--format", "{{.State.Status}} exit {{.State.ExitCode}}", id)
			t.Fatalf("GET /readyz did not answer 200 within a minute (last: %v; container %s)", describe(resp, err), strings.TrimSpace(state))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("container started and ready in %v", time.Since(began).Round(time.Millisecond))

	resp, err := client.Get(base + "/v1/getEventMesh")
	if err != nil {
		t.Fatal(err)
	}
	var got, want mesh.EventMesh
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/getEventMesh: %d, %v", resp.StatusCode, err)
	}
	raw, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("%s: %v", golden, err)
	}
	if len(want.EventTypes) == 0 || !reflect.DeepEqual(got, want) {
		gotJSON, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("the image serves a mesh other than %s's:\n%s", golden, gotJSON)
	}

	// SIGTERM, as the kubelet stops a pod: the broadcaster is PID 1 and must exit cleanly.
	c.mustPodman("stop", "--time", "10", id)
	state := strings.TrimSpace(c.mustPodman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", id))
	if state != "exited 0" {
		t.Errorf("after podman stop the container is %q, want \"exited 0\" (SIGTERM handled)", state)
	}
}

func describe(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

func sameSet(a, b []string) bool {
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}
