package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/event-mesh-broadcaster/broadcaster/cmd/broadcaster/printable"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/graph"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/source"
	"github.com/event-mesh-broadcaster/broadcaster/source/kube"
	"github.com/event-mesh-broadcaster/broadcaster/source/manifests"
)

// snapshotOptions are the flags of `broadcaster snapshot`.
type snapshotOptions struct {
	manifests, kubeconfig    string
	urls                     []string         // every --url as given
	broadcasters             []broadcasterURL // the --url values, checked
	url, cluster             string           // the one broadcaster asked: its URL, its name if given
	token, tokenFile, caFile string
	output                   string
	timeout                  time.Duration
	whole                    bool
}

// envToken is where `snapshot --url` finds a bearer token when no flag gives one.
const envToken = "BROADCASTER_TOKEN"

func snapshotFlags(o *snapshotOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("broadcaster snapshot", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; the help is the command's
	fs.Usage = func() {}
	o.sourceFlags(fs, "read the mesh from a running broadcaster at this base `url` (http://127.0.0.1:8080); "+
		"repeat it for a fleet (each NAME=URL, or the broadcaster's events.cluster names it)")
	fs.StringVar(&o.output, "o", "json", "output `format`: json, yaml, mermaid or dot")
	fs.StringVar(&o.output, "output", "json", "the same as -o `format`")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this `duration`")
	fs.BoolVar(&o.whole, "whole", false, "the whole event graph (GET /v1/mesh's mesh: Triggers, Subscriptions, flows, policies, sinks, with their edges), not the upstream model")
	return fs
}

// sourceFlags are where the mesh comes from: a manifests directory, a cluster, or a running
// broadcaster (urlUsage says what of it) and how to reach it.
func (o *snapshotOptions) sourceFlags(fs *flag.FlagSet, urlUsage string) {
	fs.StringVar(&o.manifests, "manifests", "", "read the mesh from this `dir`ectory of manifests (read once; no server)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "read the mesh from the cluster of this kubeconfig `file` (its initial listing)")
	fs.Func("url", urlUsage, func(v string) error { o.urls = append(o.urls, v); return nil })
	fs.StringVar(&o.token, "token", "", "with --url: the bearer `token` (visible in ps: prefer --token-file or $"+envToken+")")
	fs.StringVar(&o.tokenFile, "token-file", "", "with --url: read the bearer token from this `file`")
	fs.StringVar(&o.caFile, "ca-file", "", "with --url: also trust these PEM CA certificates (`file`) for https")
}

// snapshot prints the mesh once, from a manifests directory, a cluster or a running
// broadcaster. JSON is GET /v1/getEventMesh's document (indented) and YAML the same in YAML;
// Mermaid and DOT draw mesh/graph's picture of it. Usage errors wrap errUsage.
func snapshot(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o snapshotOptions
	fs := snapshotFlags(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: snapshot: %w", errUsage, err)
	}
	if err := o.validate(fs.Args()); err != nil {
		return fmt.Errorf("%w: snapshot: %w", errUsage, err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	if len(o.broadcasters) > 1 {
		meshes, err := meshesOfBroadcasters(ctx, o, getenv)
		if err != nil {
			return err
		}
		return writeFleetSnapshot(stdout, meshes, o.output, o.whole)
	}
	var raw []byte // the EventMesh JSON
	var err error
	switch {
	case o.manifests != "":
		src, serr := manifests.New(o.manifests, manifests.WithLogger(log.With("source", "manifests")))
		if serr != nil {
			return fmt.Errorf("%w: snapshot: --manifests %s: %w", errUsage, o.manifests, serr)
		}
		raw, err = meshOf(ctx, src, log, o.whole)
		if err != nil {
			err = fmt.Errorf("snapshot: --manifests %s: %w", o.manifests, err)
		}
	case o.kubeconfig != "":
		raw, err = meshOfCluster(ctx, o.kubeconfig, log, o.whole)
	default:
		raw, _, err = meshOfBroadcaster(ctx, o, getenv)
	}
	if err != nil {
		return err
	}
	return writeSnapshot(stdout, raw, o.output, o.whole)
}

func (o *snapshotOptions) validate(rest []string) error {
	given := 0
	for _, s := range []string{o.manifests, o.kubeconfig, strings.Join(o.urls, ",")} {
		if s != "" {
			given++
		}
	}
	switch {
	case len(rest) > 0:
		return fmt.Errorf("unexpected arguments %q", strings.Join(rest, " "))
	case given != 1:
		return errors.New("give exactly one of --manifests DIR, --kubeconfig FILE, --url URL (repeatable)")
	case o.output != "json" && o.output != "yaml" && o.output != "mermaid" && o.output != "dot":
		return fmt.Errorf("-o %q: want json, yaml, mermaid or dot", o.output)
	case o.timeout <= 0:
		return fmt.Errorf("--timeout %v: want a positive duration", o.timeout)
	case len(o.urls) == 0 && (o.token != "" || o.tokenFile != "" || o.caFile != ""):
		return errors.New("--token, --token-file and --ca-file go with --url")
	case o.token != "" && o.tokenFile != "":
		return errors.New("give --token or --token-file, not both")
	}
	o.broadcasters = nil
	for _, v := range o.urls {
		b, err := parseBroadcasterURL(v)
		if err != nil {
			return err
		}
		o.broadcasters = append(o.broadcasters, b)
	}
	if len(o.broadcasters) == 1 {
		o.url, o.cluster = o.broadcasters[0].url, o.broadcasters[0].cluster
	}
	if o.kubeconfig != "" {
		if _, err := os.Stat(o.kubeconfig); err != nil {
			return fmt.Errorf("--kubeconfig %s: %w", o.kubeconfig, err)
		}
	}
	return nil
}

// meshOf runs src until its initial listing is in the mesh, stops it, and returns the mesh:
// the upstream EventMesh JSON, or with whole the Mesh JSON of every kind.
func meshOf(ctx context.Context, src source.Source, log *slog.Logger, whole bool) ([]byte, error) {
	h, err := loaded(ctx, src, log)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if whole {
		err = h.Snapshot().WriteMeshOf(&buf, nil)
	} else {
		err = h.Snapshot().WriteEventMesh(&buf)
	}
	return buf.Bytes(), err
}

// loaded runs src until its initial listing is in a hub, stops it, and returns the hub.
func loaded(ctx context.Context, src source.Source, log *slog.Logger) (*hub.Hub, error) {
	h, err := hub.New(engine.New("snapshot"), src.Listed, hub.WithLogger(log))
	if err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- src.Run(runCtx, h) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !h.Ready() {
		select {
		case err := <-done:
			return nil, fmt.Errorf("stopped before its initial listing: %w", err)
		case <-ctx.Done():
			stop()
			<-done
			return nil, fmt.Errorf("the initial listing did not finish within --timeout (warnings above say why): %w", ctx.Err())
		case <-tick.C:
		}
	}
	stop()
	<-done
	return h, nil
}

func meshOfCluster(ctx context.Context, kubeconfig string, log *slog.Logger, whole bool) ([]byte, error) {
	src, host, err := clusterSource("snapshot", kubeconfig, log)
	if err != nil {
		return nil, err
	}
	raw, err := meshOf(ctx, src, log, whole)
	if err != nil {
		return nil, fmt.Errorf("snapshot: --kubeconfig %s (%s): %w", kubeconfig, host, err)
	}
	return raw, nil
}

// clusterSource is a source reading the cluster of a kubeconfig for command (snapshot,
// lineage), and the API server's address.
func clusterSource(command, kubeconfig string, log *slog.Logger) (source.Source, string, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: --kubeconfig %s: %w", errUsage, command, kubeconfig, err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "event-mesh-broadcaster " + command
	cfg.QPS, cfg.Burst = 50, 100
	src, err := kube.New(cfg, kube.WithLogger(log.With("source", "cluster")))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: --kubeconfig %s: %w", errUsage, command, kubeconfig, err)
	}
	return src, cfg.Host, nil
}

// meshOfBroadcaster reads GET /v1/getEventMesh (with --whole: GET /v1/mesh's mesh), asking
// again while the broadcaster is loading, and the cluster it is of (its Mesh-Cluster header,
// else the name --url gave it; a name that contradicts the header is an error).
func meshOfBroadcaster(ctx context.Context, o snapshotOptions, getenv func(string) string) (raw []byte, cluster string, err error) {
	path := mesh.PathGetEventMesh
	if o.whole {
		path = mesh.PathMesh
	}
	raw, header, err := askBroadcaster(ctx, "snapshot", o, getenv, path, nil)
	if err != nil {
		return nil, "", err
	}
	cluster = header.Get(mesh.HeaderCluster)
	switch {
	case cluster == "":
		cluster = o.cluster
	case o.cluster != "" && cluster != o.cluster:
		return nil, "", fmt.Errorf("snapshot: --url %s=%s: the broadcaster there is of cluster %q", o.cluster, o.url, cluster)
	}
	if !o.whole {
		return raw, cluster, nil
	}
	var s struct {
		Mesh json.RawMessage `json:"mesh"`
	}
	if err := json.Unmarshal(raw, &s); err != nil || len(s.Mesh) == 0 {
		return nil, "", fmt.Errorf("snapshot: --url %s: %s has no mesh", o.url, mesh.PathMesh)
	}
	return s.Mesh, cluster, nil
}

// askBroadcaster GETs path?query from the broadcaster at --url for command, asking again while
// it is loading, and returns the JSON answer and its header.
func askBroadcaster(ctx context.Context, command string, o snapshotOptions, getenv func(string) string, path string, query url.Values) ([]byte, http.Header, error) {
	token, err := o.bearerToken(getenv)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", errUsage, command, err)
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: --ca-file: %w", errUsage, command, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("%w: %s: --ca-file %s: no PEM certificate in it", errUsage, command, o.caFile)
		}
		tlsConfig.RootCAs = pool
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, Proxy: http.ProxyFromEnvironment}}
	// A client of one call: nothing is left open behind it, not even a connection dialled for
	// a request that was cancelled (a fleet's other broadcasters when one fails), which the
	// broadcaster would wait for when it shuts down.
	defer client.CloseIdleConnections()
	base := strings.TrimSuffix(o.url, "/")
	for _, p := range []string{mesh.PathGetEventMesh, mesh.PathMesh, mesh.PathLineage} { // a whole endpoint URL works too
		base = strings.TrimSuffix(base, p)
	}
	endpoint := base + path
	if len(query) > 0 {
		endpoint += "?" + query.Encode()
	}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: --url %s: %w", errUsage, command, o.url, err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: --url %s: %w", command, o.url, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: --url %s: reading the answer: %w", command, o.url, err)
		}
		var problem mesh.Problem
		_ = json.Unmarshal(body, &problem) // error answers carry one; its absence leaves it empty
		switch resp.StatusCode {
		case http.StatusOK:
			if !json.Valid(body) {
				return nil, nil, fmt.Errorf("%s: --url %s: %s is not JSON", command, o.url, endpoint)
			}
			return body, resp.Header, nil
		case http.StatusUnauthorized:
			if token == "" {
				return nil, nil, fmt.Errorf("%s: --url %s: 401: the broadcaster wants a bearer token: give --token-file, --token or $%s", command, o.url, envToken)
			}
			return nil, nil, fmt.Errorf("%s: --url %s: 401: the broadcaster refused the token (%s)", command, o.url, problem.Error)
		case http.StatusForbidden:
			return nil, nil, fmt.Errorf("%s: --url %s: 403: the token may see no namespace of the mesh (%s)", command, o.url, problem.Error)
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("%s: --url %s: still %d (%s) when time ran out: %w", command, o.url, resp.StatusCode, problem.Error, ctx.Err())
			case <-time.After(wait):
			}
		default:
			if problem.Error != "" {
				return nil, nil, fmt.Errorf("%s: --url %s: %d: %s", command, o.url, resp.StatusCode, problem.Error)
			}
			return nil, nil, fmt.Errorf("%s: --url %s: %s answered %d %s", command, o.url, endpoint, resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 512)])))
		}
	}
}

// bearerToken is --token, else --token-file's content, else $BROADCASTER_TOKEN, else none.
func (o snapshotOptions) bearerToken(getenv func(string) string) (string, error) {
	switch {
	case o.token != "":
		return o.token, nil
	case o.tokenFile != "":
		raw, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		token := strings.TrimSpace(string(raw))
		if token == "" || strings.ContainsAny(token, " \t\r\n") {
			return "", fmt.Errorf("--token-file %s: want one token and nothing else", o.tokenFile)
		}
		return token, nil
	}
	return strings.TrimSpace(getenv(envToken)), nil
}

// writeSnapshot prints the EventMesh JSON raw (whole: the Mesh JSON) in format.
func writeSnapshot(w io.Writer, raw []byte, format string, whole bool) error {
	switch format {
	case "json":
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		buf.WriteByte('\n')
		_, err := w.Write(printable.JSON(buf.Bytes())) // valid JSON, and nothing raw for a terminal
		return err
	case "yaml":
		// Through a yaml.Node, so members keep the order of the JSON (and of the protocol).
		if err := writeYAML(w, raw); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		return nil
	}
	var m mesh.Mesh
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	g := graph.Build(m.EventMesh)
	if whole {
		g = graph.BuildWhole(m)
	}
	return writePicture(w, g, format)
}
