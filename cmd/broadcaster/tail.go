package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	natsgo "github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/printable"
	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer/mqttconsumer"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer/natsconsumer"
	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
	"github.com/event-mesh-broadcaster/broadcaster/transports/nats"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync/page/fleet"
)

// tailOptions are the flags of `broadcaster tail`.
type tailOptions struct {
	watches                []string         // every --watch as given
	watched                []broadcasterURL // the --watch values, checked: base URLs
	mqtt, nats             string
	clusters               []string // --cluster
	mqttPrefix             string
	natsPrefix, natsBucket string
	tokenFile              string
	caFile                 string
	certFile, keyFile      string
	username, passwordFile string
	natsCreds              string
	namespaces, kinds      []string
	output, color          string
	timestamps             bool
	connectTimeout         time.Duration
	token, password        string // from the files or the environment
	getenv                 func(string) string
	stderr                 io.Writer
	kindFilter, nsFilter   map[string]bool
	clusterFilter          map[string]bool
	tlsConfig              *tls.Config
}

// tailFlags binds the flags of `broadcaster tail` to o.
func tailFlags(o *tailOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("broadcaster tail", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.Func("watch", "follow a broadcaster's GET /v1/watch at this base `url` (http://127.0.0.1:8080); repeat it for a fleet "+
		"(each NAME=URL, or the broadcaster's events.cluster names it)", func(v string) error {
		o.watches = append(o.watches, v)
		return nil
	})
	fs.StringVar(&o.mqtt, "mqtt", "", "follow this MQTT broker `url` (mqtt://, mqtts://)")
	fs.StringVar(&o.nats, "nats", "", "follow this NATS server `url` (nats://, tls://): the KV bucket's entities, then the changes")
	fs.StringVar(&o.mqttPrefix, "mqtt-topic-prefix", mqtt.DefaultTopicPrefix, "MQTT topic `prefix`")
	fs.StringVar(&o.natsPrefix, "nats-subject-prefix", nats.DefaultSubjectPrefix, "NATS subject `prefix`")
	fs.StringVar(&o.natsBucket, "nats-kv-bucket", "", "NATS KV bucket `name` (default from the subject prefix)")
	fs.StringVar(&o.tokenFile, "token-file", "", "read the bearer token for --watch from this `file` (default $BROADCASTER_TOKEN)")
	fs.StringVar(&o.caFile, "ca-file", "", "also trust the PEM CA certificates in this `file`")
	fs.StringVar(&o.certFile, "cert-file", "", "present the PEM client certificate in this `file` (with --key-file)")
	fs.StringVar(&o.keyFile, "key-file", "", "the PEM private key `file` of --cert-file")
	fs.StringVar(&o.username, "username", "", "MQTT or NATS user `name`")
	fs.StringVar(&o.passwordFile, "password-file", "", "read the MQTT or NATS password from this `file` (default $BROADCASTER_PASSWORD)")
	fs.StringVar(&o.natsCreds, "nats-creds", "", "NATS credentials `file`")
	fs.Func("namespace", "show only entities of this `namespace` (repeatable, or comma-separated)", func(v string) error {
		o.namespaces = appendList(o.namespaces, v)
		return nil
	})
	fs.Func("cluster", "show only entities of this `cluster` (its events.cluster; repeatable, or comma-separated)", func(v string) error {
		o.clusters = appendList(o.clusters, v)
		return nil
	})
	fs.Func("kind", "show only entities of this `kind`: "+entityKindNames()+" (repeatable, or comma-separated)", func(v string) error {
		o.kinds = appendList(o.kinds, v)
		return nil
	})
	fs.StringVar(&o.output, "output", "text", "text, json or yaml (one document per entity or change)")
	fs.StringVar(&o.output, "o", "text", "short for --output")
	fs.BoolVar(&o.timestamps, "timestamps", false, "print when each line arrived")
	fs.StringVar(&o.color, "color", "auto", "auto (a terminal, unless $NO_COLOR is set), always or never")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Second, "give up when the destination cannot be reached within this `duration` at the start")
	return fs
}

func appendList(list []string, v string) []string {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	return list
}

// tail prints the mesh, then its changes as they happen, from /v1/watch, an MQTT broker or NATS.
func tail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, isTerminal bool) error {
	o := &tailOptions{getenv: getenv, stderr: stderr}
	if err := tailFlags(o).Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: tail: %w", errUsage, err)
	}
	if err := o.check(); err != nil {
		return fmt.Errorf("%w: tail: %w", errUsage, err)
	}
	if err := o.readSecrets(); err != nil {
		return fmt.Errorf("%w: tail: %w", errUsage, err)
	}
	color := o.color == "always" || (o.color == "auto" && isTerminal && getenv("NO_COLOR") == "")
	p := &printer{out: stdout, format: o.output, color: color, timestamps: o.timestamps, keep: o.keep, now: time.Now}
	switch {
	case len(o.watched) > 0:
		return tailWatch(ctx, o, p)
	case o.mqtt != "":
		return tailMQTT(ctx, o, p)
	default:
		return tailNATS(ctx, o, p)
	}
}

var errUsage = errors.New("usage")

// check validates the flags before anything is contacted.
func (o *tailOptions) check() error {
	sources := 0
	for _, s := range []string{strings.Join(o.watches, ","), o.mqtt, o.nats} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		return errors.New("give exactly one of --watch, --mqtt, --nats")
	}
	if !slices.Contains([]string{"text", "json", "yaml"}, o.output) {
		return fmt.Errorf("--output %q: want text, json or yaml", o.output)
	}
	if !slices.Contains([]string{"auto", "always", "never"}, o.color) {
		return fmt.Errorf("--color %q: want auto, always or never", o.color)
	}
	if o.connectTimeout <= 0 {
		return fmt.Errorf("--connect-timeout %v: want > 0", o.connectTimeout)
	}
	o.kindFilter, o.nsFilter, o.clusterFilter = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, c := range o.clusters {
		if err := mesh.CheckCluster(c); err != nil {
			return fmt.Errorf("--cluster: %w", err)
		}
		o.clusterFilter[c] = true
	}
	for _, k := range o.kinds {
		kind, err := mesh.ParseEntityKind(strings.ToLower(k))
		if err != nil {
			return fmt.Errorf("--kind %q: want one of %s", k, entityKindNames())
		}
		o.kindFilter[kind.String()] = true
	}
	for _, ns := range o.namespaces {
		o.nsFilter[ns] = true
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return errors.New("--cert-file and --key-file: give both or neither")
	}
	var err error
	switch {
	case len(o.watches) > 0:
		o.watched = nil
		for _, v := range o.watches {
			var b broadcasterURL
			if b, err = watchBase(v); err != nil {
				return err
			}
			for _, other := range o.watched {
				if other.url == b.url {
					return fmt.Errorf("--watch %s: given twice", b.url)
				}
			}
			o.watched = append(o.watched, b)
		}
	case o.mqtt != "":
		err = checkURL("--mqtt", o.mqtt, "mqtt", "mqtts", "tls", "ws", "wss")
	default:
		err = checkURL("--nats", o.nats, "nats", "tls", "ws", "wss")
	}
	return err
}

// watchBase accepts a broadcaster's base URL, or the URL of one of its /v1 endpoints (its
// query dropped: the stream is resumed by tail itself), after NAME= to name its cluster (as
// `broadcaster page` reads its --url).
func watchBase(v string) (broadcasterURL, error) {
	if i := strings.IndexAny(v, "?#"); i >= 0 {
		v = v[:i]
	}
	t, err := fleet.Parse(v)
	if err != nil {
		return broadcasterURL{}, fmt.Errorf("--watch: %w", err)
	}
	for _, p := range []string{mesh.PathWatch, mesh.PathGetEventMesh, mesh.PathDeltas, mesh.PathMesh} {
		t.URL.Path = strings.TrimSuffix(t.URL.Path, p)
	}
	return broadcasterURL{cluster: t.Name, url: strings.TrimSuffix(t.URL.String(), "/")}, nil
}

func checkURL(flagName, raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%s %q: %v", flagName, raw, err)
	case !slices.Contains(schemes, u.Scheme):
		return fmt.Errorf("%s %q: want a URL such as %s://host:port (the scheme one of %s)", flagName, raw, schemes[0], strings.Join(schemes, ", "))
	case u.Host == "":
		return fmt.Errorf("%s %q: no host", flagName, raw)
	}
	return nil
}

// readSecrets reads the token, the password and the TLS files.
func (o *tailOptions) readSecrets() error {
	read := func(flagName, file, envName string) (string, error) {
		if file == "" {
			return o.getenv(envName), nil
		}
		raw, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s %q: %w", flagName, file, err)
		}
		return strings.TrimRight(string(raw), "\r\n"), nil
	}
	var err error
	if o.token, err = read("--token-file", o.tokenFile, "BROADCASTER_TOKEN"); err != nil {
		return err
	}
	if o.password, err = read("--password-file", o.passwordFile, "BROADCASTER_PASSWORD"); err != nil {
		return err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	o.tlsConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return fmt.Errorf("--ca-file %q: %w", o.caFile, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca-file %q: no PEM certificate in it", o.caFile)
		}
	}
	if o.certFile != "" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return fmt.Errorf("--cert-file %q, --key-file %q: %w", o.certFile, o.keyFile, err)
		}
		o.tlsConfig.Certificates = []tls.Certificate{cert}
	}
	return nil
}

// keep applies the --cluster, --namespace and --kind filters.
func (o *tailOptions) keep(id consumer.FleetEntityID) bool {
	return (len(o.kindFilter) == 0 || o.kindFilter[id.Kind.String()]) && (len(o.nsFilter) == 0 || o.nsFilter[id.Key.Namespace]) &&
		(len(o.clusterFilter) == 0 || o.clusterFilter[id.Cluster])
}

// streamCluster is the cluster to ask an MQTT or NATS stream for: with one --cluster, only its
// messages travel; with several, all do and keep drops the others.
func (o *tailOptions) streamCluster() string {
	if len(o.clusterFilter) == 1 {
		return o.clusters[0]
	}
	return ""
}

// printer writes the entities and the changes. It remembers each entity's last state, so an
// update can say what changed even when the carrier sends only the new state. Entities are
// keyed by cluster too: a fleet's clusters may all hold a shop/orders Broker.
type printer struct {
	mu         sync.Mutex
	out        io.Writer
	format     string // text, json or yaml
	color      bool
	timestamps bool
	keep       func(consumer.FleetEntityID) bool
	now        func() time.Time
	last       map[consumer.FleetEntityID]json.RawMessage
}

const (
	ansiReset  = "\x1b[0m"
	ansiDim    = "\x1b[2m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
)

// snapshot prints a whole mesh of one cluster: a header, then each entity the filters keep.
func (p *printer) snapshot(s mesh.Snapshot) {
	r := consumer.NewReplica(nil)
	r.Load(s)
	entities := r.Entities()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remember()
	for id := range p.last {
		if id.Cluster == s.Cluster {
			delete(p.last, id)
		}
	}
	ids := make([]consumer.FleetEntityID, 0, len(entities))
	for id, data := range entities {
		fid := consumer.FleetEntityID{Cluster: s.Cluster, EntityID: id}
		p.last[fid] = data
		if p.keep(fid) {
			ids = append(ids, fid)
		}
	}
	slices.SortFunc(ids, func(a, b consumer.FleetEntityID) int {
		if a.Kind != b.Kind {
			return int(a.Kind) - int(b.Kind)
		}
		return strings.Compare(a.Key.String(), b.Key.String())
	})
	if p.format == "text" {
		of := ""
		if s.Cluster != "" {
			of = " of cluster " + printable.String(s.Cluster)
		}
		fmt.Fprintf(p.out, "%s%ssnapshot%s: epoch %s, sequence %d, %d entities (%d shown)%s\n", p.stamp(), p.paint(ansiDim), of,
			printable.String(s.Epoch), s.Sequence, len(entities), len(ids), p.paint(ansiReset))
	} else {
		p.document(map[string]any{"snapshot": inCluster(map[string]any{"epoch": s.Epoch, "sequence": s.Sequence, "entities": len(entities)}, s.Cluster)})
	}
	for _, id := range ids {
		p.entityLocked(id, entities[id.EntityID])
	}
}

// entityKindNames lists the entity kinds --kind takes.
func entityKindNames() string {
	var names []string
	for _, k := range mesh.EntityKinds() {
		names = append(names, k.String())
	}
	return strings.Join(names, ", ")
}

// entity prints one entity of a mesh's state (a KV entry, a retained message): c.Entity of
// c.Cluster. Entities of kinds this version does not know are not shown.
func (p *printer) entity(c mesh.Change) {
	if !c.Kind.Known() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remember()
	id := consumer.FleetEntityID{Cluster: c.Cluster, EntityID: consumer.EntityID{Kind: c.Kind, Key: c.Key}}
	p.last[id] = c.Entity
	if p.keep(id) {
		p.entityLocked(id, c.Entity)
	}
}

func (p *printer) entityLocked(id consumer.FleetEntityID, data json.RawMessage) {
	if p.format != "text" {
		p.document(inCluster(map[string]any{"kind": id.Kind.String(), "key": id.Key.String(), "entity": data}, id.Cluster))
		return
	}
	fmt.Fprintf(p.out, "%s  %s%-12s %s\n", p.stamp(), clusterColumn(id.Cluster), id.Kind, printable.String(id.Key.String()))
}

// remember makes the map of last states on first use (the caller holds p.mu).
func (p *printer) remember() {
	if p.last == nil {
		p.last = map[consumer.FleetEntityID]json.RawMessage{}
	}
}

// inCluster adds the cluster to a JSON or YAML document, when the broadcaster has a name.
func inCluster(doc map[string]any, cluster string) map[string]any {
	if cluster != "" {
		doc["cluster"] = cluster
	}
	return doc
}

// clusterColumn names the cluster of a line, when the broadcaster has a name.
func clusterColumn(cluster string) string {
	if cluster == "" {
		return ""
	}
	return "[" + printable.String(cluster) + "] "
}

func (p *printer) change(c mesh.Change) {
	if !c.Kind.Known() {
		return // a newer broadcaster's kind
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remember()
	id := consumer.FleetEntityID{Cluster: c.Cluster, EntityID: consumer.EntityID{Kind: c.Kind, Key: c.Key}}
	if c.Op == mesh.OpUpdated && c.Previous == nil {
		c.Previous = p.last[id]
	}
	if c.Op == mesh.OpDeleted {
		delete(p.last, id)
	} else {
		p.last[id] = c.Entity
	}
	if !p.keep(id) {
		return
	}
	if p.format != "text" {
		p.document(inCluster(map[string]any{"key": c.Key.String(), "kind": c.Kind.String(), "op": c.Op.String(),
			"epoch": c.Epoch, "sequence": c.Sequence, "entity": c.Entity}, c.Cluster))
		return
	}
	colour := map[mesh.Op]string{mesh.OpAdded: ansiGreen, mesh.OpUpdated: ansiYellow, mesh.OpDeleted: ansiRed}[c.Op]
	line := fmt.Sprintf("%s%s#%-6d%s %s%s%-12s %-7s%s %s", p.stamp(), p.paint(ansiDim), c.Sequence, p.paint(ansiReset),
		clusterColumn(c.Cluster), p.paint(colour), c.Kind, c.Op, p.paint(ansiReset), printable.String(c.Key.String()))
	if s := c.Summary(); s != "" {
		line += "  " + p.paint(ansiDim) + printable.String(s) + p.paint(ansiReset)
	}
	fmt.Fprintln(p.out, line)
}

// document writes one JSON line or one YAML document, with the time when asked. Whatever
// strings the entity holds, the document is complete and valid, and holds no raw control
// character (JSON escapes them as \uXXXX, YAML in double quotes).
func (p *printer) document(v map[string]any) {
	if p.timestamps {
		v["time"] = p.now().UTC().Format(time.RFC3339Nano)
	}
	data, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(p.out, "# tail: cannot print this document: %s\n", printable.String(err.Error()))
		return // only strings, numbers and JSON from the wire
	}
	if p.format == "yaml" {
		fmt.Fprint(p.out, "---\n")
		if err := writeYAML(p.out, data); err != nil {
			fmt.Fprintf(p.out, "# tail: cannot print this document: %s\n", printable.String(err.Error()))
		}
		return
	}
	fmt.Fprintf(p.out, "%s\n", printable.JSON(data))
}

func (p *printer) stamp() string {
	if !p.timestamps {
		return ""
	}
	return p.paint(ansiDim) + p.now().Format("15:04:05.000") + p.paint(ansiReset) + " "
}

func (p *printer) paint(code string) string {
	if p.color {
		return code
	}
	return ""
}

// unreachable is the error of a destination that never answered within the connect timeout.
func unreachable(what string, timeout time.Duration, err error) error {
	return fmt.Errorf("tail: cannot reach %s within %v: %w", what, timeout, err)
}

// tailWatch follows every --watch at once; the first broadcaster that fails for good (a token
// refused, never reached at the start, another's cluster name) ends the tail.
func tailWatch(ctx context.Context, o *tailOptions, p *printer) error {
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: o.tlsConfig,
		DialContext:           (&net.Dialer{Timeout: o.connectTimeout}).DialContext,
		ResponseHeaderTimeout: o.connectTimeout}}
	names := &clusterNames{of: map[string]broadcasterURL{}}
	g, ctx := errgroup.WithContext(ctx)
	for _, b := range o.watched {
		g.Go(func() error { return watchOne(ctx, o, p, client, b, names) })
	}
	return g.Wait()
}

// clusterNames notes which --watch is which cluster: two broadcasters of one name (or both
// without one) would mix their entities in one column.
type clusterNames struct {
	mu sync.Mutex
	of map[string]broadcasterURL
}

// claim names b's stream: the cluster its snapshot says, else the NAME= of its --watch.
func (n *clusterNames) claim(b broadcasterURL, said string) (string, error) {
	name := said
	switch {
	case name == "":
		name = b.cluster
	case b.cluster != "" && said != b.cluster:
		return "", fmt.Errorf("tail: --watch %s: the broadcaster there is of cluster %q", b, said)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if other, taken := n.of[name]; taken && other != b {
		if name == "" {
			return "", fmt.Errorf("tail: --watch %s and --watch %s have no cluster name (events.cluster), so their entities "+
				"cannot be told apart: name them, --watch NAME=URL", other, b)
		}
		return "", fmt.Errorf("tail: --watch %s and --watch %s are both cluster %q", other, b, name)
	}
	n.of[name] = b
	return name, nil
}

func watchOne(ctx context.Context, o *tailOptions, p *printer, client *http.Client, b broadcasterURL, names *clusterNames) error {
	var first error
	var cluster string
	reached := false // Follow calls back on this goroutine
	start := time.Now()
	err := consumer.Follow(ctx, b.url, o.token, client, consumer.Stream{
		Snapshot: func(s mesh.Snapshot) error {
			reached = true
			if s.Cluster, first = names.claim(b, s.Cluster); first != nil {
				return first
			}
			cluster = s.Cluster
			p.snapshot(s)
			return nil
		},
		Delta: func(payload []byte) error {
			if len(payload) == 0 {
				return nil
			}
			c, err := codec.DecodeStructured(payload)
			if err != nil {
				return err
			}
			if c.Cluster == "" {
				c.Cluster = cluster // the NAME= of an unnamed broadcaster
			}
			p.change(c)
			return nil
		},
		OnError: func(err error) bool {
			var status consumer.ErrStatus
			switch {
			case first != nil:
				return false
			case errors.As(err, &status) && (status.Code == http.StatusUnauthorized || status.Code == http.StatusForbidden):
				first = fmt.Errorf("tail: %s answered %d: the token (--token-file, $BROADCASTER_TOKEN) is missing or not allowed", b.url, status.Code)
				return false // a token problem does not fix itself
			case !reached:
				if time.Since(start) < o.connectTimeout {
					return true // not up yet (refused, 503): try again until the timeout
				}
				first = unreachable(b.url, o.connectTimeout, err)
				return false
			}
			fmt.Fprintf(o.stderr, "tail: %s: %v; reconnecting\n", b.url, err)
			return true
		},
	})
	switch {
	case first != nil:
		return first
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return nil
	}
	return fmt.Errorf("tail: %s: %w", b.url, err)
}

func tailMQTT(ctx context.Context, o *tailOptions, p *printer) error {
	u, _ := url.Parse(o.mqtt)
	if u.Scheme == "mqtts" {
		u.Scheme = "tls"
	}
	cfg := autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		TlsCfg: o.tlsConfig, ConnectTimeout: o.connectTimeout,
		ReconnectBackoff: autopaho.NewExponentialBackoff(100*time.Millisecond, 10*time.Second, 200*time.Millisecond, 2),
	}
	cfg.ConnectUsername, cfg.ConnectPassword = o.username, []byte(o.password)
	if u.User != nil && o.username == "" {
		cfg.ConnectUsername = u.User.Username()
		password, _ := u.User.Password()
		cfg.ConnectPassword = []byte(password)
	}
	// A retained message is an entity of the mesh's state, a live one a change.
	cm, err := mqttconsumer.Connect(ctx, cfg, mqttconsumer.Stream{Prefix: o.mqttPrefix, Cluster: o.streamCluster(),
		Entity: func(c mesh.Change) error { p.entity(c); return nil },
		Change: func(c mesh.Change) error { p.change(c); return nil },
		OnError: func(err error) {
			var bad *consumer.MessageError
			if errors.As(err, &bad) { // tail reports the messages it cannot read
				fmt.Fprintf(o.stderr, "tail: %v\n", err)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	connectCtx, cancel := context.WithTimeout(ctx, o.connectTimeout)
	err = cm.AwaitConnection(connectCtx)
	cancel()
	if err != nil && ctx.Err() == nil {
		return unreachable(option.RedactURL(o.mqtt), o.connectTimeout, err)
	}
	<-ctx.Done()
	<-cm.Done()
	return nil
}

func tailNATS(ctx context.Context, o *tailOptions, p *printer) error {
	opts := []natsgo.Option{natsgo.Timeout(o.connectTimeout), natsgo.MaxReconnects(-1), natsgo.Name("broadcaster tail")}
	if o.natsCreds != "" {
		opts = append(opts, natsgo.UserCredentials(o.natsCreds))
	}
	if o.username != "" {
		opts = append(opts, natsgo.UserInfo(o.username, o.password))
	}
	if strings.HasPrefix(o.nats, "tls://") || o.caFile != "" || o.certFile != "" {
		opts = append(opts, natsgo.Secure(o.tlsConfig))
	}
	var nc *natsgo.Conn
	var err error
	for start := time.Now(); ; {
		if nc, err = natsgo.Connect(o.nats, opts...); err == nil {
			break
		}
		if time.Since(start) >= o.connectTimeout || ctx.Err() != nil {
			return unreachable(option.RedactURL(o.nats), o.connectTimeout, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	defer nc.Close()

	bucket := o.natsBucket
	if bucket == "" {
		bucket = nats.BucketName(o.natsPrefix)
	}
	err = natsconsumer.Follow(ctx, nc, natsconsumer.Stream{Prefix: o.natsPrefix, Cluster: o.streamCluster(), Bucket: bucket, ListTimeout: o.connectTimeout,
		Entity: func(c mesh.Change) error { p.entity(c); return nil },
		Change: func(c mesh.Change) error { p.change(c); return nil },
		OnError: func(err error) {
			var list *natsconsumer.ListError
			if errors.As(err, &list) {
				fmt.Fprintf(o.stderr, "tail: %v; showing the changes from now on only\n", err)
				return
			}
			fmt.Fprintf(o.stderr, "tail: %v\n", err)
		},
	})
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("tail: %w", err) // the subscription failed
	}
	return nil
}
