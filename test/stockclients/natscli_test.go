package stockclients

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// natsCLIVersion is the NATS CLI the test runs, from the Go module proxy.
const natsCLIVersion = "v0.5.0"

// natsCLI is the `nats` command, built once into the user cache.
var natsCLI = sync.OnceValues(func() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "event-mesh-broadcaster", "natscli-"+natsCLIVersion)
	bin := filepath.Join(dir, "nats")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.Command("go", "install", "github.com/nats-io/natscli/nats@"+natsCLIVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return bin, nil
})

// The NATS CLI reads what the broadcaster keeps in NATS as docs/protocol.md says: `nats kv ls`
// lists one key per entity of the mesh (every kind), and `nats kv get --raw` of a key is a
// structured CloudEvent of that entity, as GET /v1/mesh serves it.
func TestNATSCLIReadsTheKVBucket(t *testing.T) {
	t.Parallel()
	cli, err := natsCLI()
	if err != nil {
		t.Fatalf("building the NATS CLI %s: %v", natsCLIVersion, err)
	}
	server := brokers.StartNATS(t)
	b := make([]byte, 4)
	rand.Read(b)
	prefix, bucket := "stock.n"+hex.EncodeToString(b)+".eventmesh", "stock_n"+hex.EncodeToString(b)
	br := startBroadcaster(t, testkit.CopyDir(t, "../../examples/mesh"), testkit.FreeAddr(t),
		"--nats", server.URL, "--nats-subject-prefix", prefix, "--nats-kv-bucket", bucket)
	testkit.Eventually(t, "the broadcaster to load", 60*time.Second, br.ready)
	entities := wholeMesh(t, br.base)

	nats := func(args ...string) string {
		t.Helper()
		var out, stderr bytes.Buffer
		cmd := exec.Command(cli, append([]string{"--server", server.URL}, args...)...)
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("nats %q: %v\n%s", args, err, stderr.String())
		}
		return out.String()
	}
	var keys []string
	testkit.Eventually(t, "nats kv ls to list every entity", 60*time.Second, func() bool {
		keys = strings.Fields(nats("kv", "ls", bucket))
		return len(keys) == len(entities)
	})
	for _, k := range keys {
		key, err := natspub.KeyFromTokens(k)
		if err != nil {
			t.Fatalf("nats kv ls: %q: %v", k, err)
		}
		if _, ok := entities[key]; !ok {
			t.Errorf("nats kv ls lists %s, which GET /v1/mesh does not have", key)
		}
	}
	want := mesh.MustParseKey("eventing.knative.dev/EventType/shop/order-created")
	raw := nats("kv", "get", bucket, natspub.KeyTokens(want), "--raw")
	c, err := codec.DecodeStructured([]byte(strings.TrimSpace(raw)))
	if err != nil {
		t.Fatalf("nats kv get --raw is no mesh-delta CloudEvent: %v\n%s", err, raw)
	}
	var got, served any
	json.Unmarshal(c.Entity, &got)
	json.Unmarshal(entities[want], &served)
	if c.Key != want || !slices.Contains([]mesh.Op{mesh.OpAdded, mesh.OpUpdated}, c.Op) || !jsonEqual(got, served) {
		t.Errorf("nats kv get: %s %s %s, want %s as GET /v1/mesh serves it: %s", c.Op, c.Key, c.Entity, want, entities[want])
	}
}

// wholeMesh is GET /v1/mesh's entities of every kind, by key.
func wholeMesh(t *testing.T, base string) map[mesh.Key]json.RawMessage {
	t.Helper()
	resp, err := http.Get(base + mesh.PathMesh)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var snap mesh.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	out := map[mesh.Key]json.RawMessage{}
	snap.Mesh.Each(func(_ mesh.EntityKind, key mesh.Key, entity any) {
		out[key], _ = json.Marshal(entity)
	})
	return out
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
