package brokers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Domain is the JetStream domain of a NATSCluster: a client of one of its leaf nodes reaches
// its streams and buckets through it ($JS.<Domain>.API).
const Domain = "hub"

// NATSCluster is a JetStream cluster of nats-server processes on loopback, each with a store
// of its own on disk, and optionally leaf nodes (without JetStream) that join it.
type NATSCluster struct {
	// Name is the cluster's name (JetStream placement's cluster).
	Name string
	// Nodes are the cluster's servers, named n1, n2, ... (their JetStream server names).
	Nodes []*NATS
	// Leaves are the leaf nodes, named leaf1, leaf2, ...; AddLeaf starts one.
	Leaves []*NATS

	t         testing.TB
	dir       string
	leafPorts []int // where the nodes accept leaf node connections
}

// StartNATSCluster starts a JetStream cluster of n servers (tagged "node:nI") and waits until
// it can place a stream on all of them (a meta leader is elected and knows every server
// online). Every server is stopped at the end of the test.
func StartNATSCluster(t testing.TB, n int) *NATSCluster {
	t.Helper()
	c := &NATSCluster{Name: "fleet", t: t, dir: t.TempDir()}
	ports := freePorts(t, 3*n)
	clientPorts, routePorts, leafPorts := ports[:n], ports[n:2*n], ports[2*n:]
	c.leafPorts = leafPorts
	for i := range n {
		var routes []string
		for j, p := range routePorts {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		name := fmt.Sprintf("n%d", i+1)
		conf := fmt.Sprintf(`server_name: %s
server_tags: ["node:%s"]
jetstream { domain: %s }
cluster { name: %s, listen: "127.0.0.1:%d", routes: [%s] }
leafnodes { listen: "127.0.0.1:%d" }
`, name, name, Domain, c.Name, routePorts[i], quoteAll(routes), leafPorts[i])
		c.Nodes = append(c.Nodes, startNATSOn(t, clientPorts[i], []string{"-c", c.write(name+".conf", conf)}))
	}
	c.AwaitJetStream(c.URL(), 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := placeProbe(c.URL(), n)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster cannot place a stream on its %d servers: %v", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// placeProbe creates and deletes a stream of n replicas.
func placeProbe(url string, n int) error {
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PROBE", Subjects: []string{"probe.placement"}, Replicas: n,
		Storage: jetstream.MemoryStorage}); err != nil {
		return err
	}
	return js.DeleteStream(ctx, "PROBE")
}

// URL is every node's client URL, comma-separated, as nats.go takes a cluster.
func (c *NATSCluster) URL() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return strings.Join(urls, ",")
}

// Node is the node of a server name (a stream's leader), or nil.
func (c *NATSCluster) Node(serverName string) *NATS {
	var i int
	if _, err := fmt.Sscanf(serverName, "n%d", &i); err != nil || i < 1 || i > len(c.Nodes) {
		return nil
	}
	return c.Nodes[i-1]
}

// AddLeaf starts a leaf node without JetStream of its own that connects to every node of the
// cluster, and waits until the cluster's JetStream answers through it (in Domain).
func (c *NATSCluster) AddLeaf() *NATS {
	c.t.Helper()
	var remotes []string
	for _, p := range c.leafPorts {
		remotes = append(remotes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	name := fmt.Sprintf("leaf%d", len(c.Leaves)+1)
	conf := fmt.Sprintf("server_name: %s\nleafnodes { remotes: [ { urls: [%s] } ] }\n", name, quoteAll(remotes))
	b := &NATS{process: process{t: c.t}, args: []string{"-c", c.write(name+".conf", conf)}}
	b.log = filepath.Join(c.t.TempDir(), "nats-server.log")
	b.Start()
	c.t.Cleanup(b.Stop)
	c.Leaves = append(c.Leaves, b)
	c.awaitJetStream(b.URL, Domain, 30*time.Second)
	return b
}

// AwaitJetStream waits until JetStream answers an account info request at url.
func (c *NATSCluster) AwaitJetStream(url string, timeout time.Duration) {
	c.t.Helper()
	c.awaitJetStream(url, "", timeout)
}

func (c *NATSCluster) awaitJetStream(url, domain string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = jetStreamAnswers(url, domain); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("JetStream does not answer at %s: %v", url, last)
}

func jetStreamAnswers(url, domain string) error {
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if domain != "" {
		js, err = jetstream.NewWithDomain(nc, domain)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

func (c *NATSCluster) write(name, content string) string {
	path := filepath.Join(c.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = `"` + s + `"`
	}
	return strings.Join(q, ", ")
}

// freePorts are n distinct loopback ports free a moment ago (the servers bind them a little
// later, and bind them again when restarted), chosen below the kernel's ephemeral range: an
// outgoing connection or another test's listener on port 0 takes ports of that range, and on
// a busy machine one took a port between this choice and the bind (a node that never started).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	low := ephemeralLow()
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("no %d free ports below %d", n, low)
		}
		p := 10000 + rand.IntN(low-10000)
		if seen[p] {
			continue
		}
		seen[p] = true
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		ports = append(ports, p)
	}
	return ports
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's default when it
// cannot be read).
func ephemeralLow() int {
	low := 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if fields := strings.Fields(string(data)); len(fields) == 2 {
			if v, err := strconv.Atoi(fields[0]); err == nil && v > 11000 {
				low = v
			}
		}
	}
	return low
}
