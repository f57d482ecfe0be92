package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync/page"
)

// Sentinel errors of Parse and Discover; each is wrapped with the URLs it concerns. The first
// three are the caller's to fix (a usage error), unlike a broadcaster that never answered.
var (
	// ErrBadURL: a URL is not http(s)://host[:port][/path], or its NAME= is not a cluster name.
	ErrBadURL = errors.New("not a broadcaster URL")
	// ErrNoName: neither NAME= nor the broadcaster (its Mesh-Cluster header) names the cluster.
	ErrNoName = errors.New("no cluster name")
	// ErrDuplicate: two broadcasters have the same cluster name.
	ErrDuplicate = errors.New("two broadcasters with one cluster name")
	// ErrUnauthorized: a broadcaster asked for its name wants a (different) bearer token.
	ErrUnauthorized = errors.New("the broadcaster wants a bearer token it accepts")
)

// Cluster is one broadcaster of the fleet: the cluster it serves and its base URL.
type Cluster struct {
	Name string
	URL  *url.URL
}

// Target is a broadcaster as the command line gives it: NAME=URL, or a URL whose cluster name
// the broadcaster itself says.
type Target struct {
	Name string // empty: learned from the broadcaster
	URL  *url.URL
	Spec string // as given, for messages
}

// Parse reads a --url value: "NAME=URL" or "URL" (an http or https base URL).
func Parse(spec string) (Target, error) {
	raw, name := spec, ""
	if i := strings.Index(spec, "="); i >= 0 && !strings.Contains(spec[:i], "/") {
		name, raw = spec[:i], spec[i+1:]
		if err := mesh.CheckCluster(name); err != nil {
			return Target{}, fmt.Errorf("%w: %q: the name before '=': %w", ErrBadURL, spec, err)
		}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return Target{}, fmt.Errorf("%w: %q: want http(s)://host:port (a broadcaster's base URL), optionally after NAME=", ErrBadURL, spec)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return Target{Name: name, URL: u, Spec: spec}, nil
}

// Option changes how Discover asks and how Handler forwards.
type Option func(*options)

type options struct {
	token     string
	transport http.RoundTripper
	log       *slog.Logger
	retry     time.Duration
}

// WithToken sends Authorization: Bearer token to every broadcaster (replacing the page's own).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTransport is how broadcasters are reached (TLS settings, a proxy); default
// http.DefaultTransport.
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// WithLogger logs what the proxy could not forward; default: discarded.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRetryInterval is how long Discover waits before asking a broadcaster that is not ready
// (503, 429) or not reachable again; default 200 ms.
func WithRetryInterval(d time.Duration) Option { return func(o *options) { o.retry = d } }

func collect(opts []Option) options {
	o := options{transport: http.DefaultTransport, log: slog.New(slog.DiscardHandler), retry: 200 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Discover names every target: by its NAME=, else by the Mesh-Cluster header of its
// broadcaster's GET /v1/mesh, asked again while the broadcaster is not ready or not reachable
// until ctx ends. A target named by NAME= is not contacted. Clusters come back in the order of
// targets.
func Discover(ctx context.Context, targets []Target, opts ...Option) ([]Cluster, error) {
	o := collect(opts)
	clusters := make([]Cluster, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		clusters[i] = Cluster{Name: t.Name, URL: t.URL}
		if t.Name != "" {
			continue
		}
		wg.Go(func() { clusters[i].Name, errs[i] = clusterName(ctx, t, o) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := checkUnique(targets, clusters); err != nil {
		return nil, err
	}
	return clusters, nil
}

// checkUnique says which targets share a cluster name.
func checkUnique(targets []Target, clusters []Cluster) error {
	first := map[string]int{}
	var errs []error
	for i, c := range clusters {
		j, seen := first[c.Name]
		if !seen {
			first[c.Name] = i
			continue
		}
		errs = append(errs, fmt.Errorf("%w: %q and %q are both cluster %q; give each its own with NAME=URL",
			ErrDuplicate, targets[j].Spec, targets[i].Spec, c.Name))
	}
	return errors.Join(errs...)
}

// clusterName asks t's broadcaster for its cluster name.
func clusterName(ctx context.Context, t Target, o options) (string, error) {
	client := &http.Client{Transport: o.transport}
	endpoint := t.URL.String() + mesh.PathMesh
	var last string
	for {
		status, name, err := askName(ctx, client, endpoint, o.token)
		switch {
		case err == nil && status == http.StatusOK && name == "":
			return "", fmt.Errorf("%w: %q: the broadcaster has no cluster name (no %s header on GET %s): "+
				"give it one (--cluster-name) or name it here with NAME=URL", ErrNoName, t.Spec, mesh.HeaderCluster, mesh.PathMesh)
		case err == nil && status == http.StatusOK:
			if cerr := mesh.CheckCluster(name); cerr != nil {
				return "", fmt.Errorf("%q: the broadcaster's cluster name: %w", t.Spec, cerr)
			}
			return name, nil
		case err == nil && (status == http.StatusUnauthorized || status == http.StatusForbidden):
			return "", fmt.Errorf("%w: %q: GET %s answered %d", ErrUnauthorized, t.Spec, mesh.PathMesh, status)
		case err == nil && status != http.StatusServiceUnavailable && status != http.StatusTooManyRequests:
			return "", fmt.Errorf("%q: GET %s answered %d", t.Spec, mesh.PathMesh, status)
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("GET %s answered %d", mesh.PathMesh, status)
		}
		timer := time.NewTimer(o.retry)
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", fmt.Errorf("%q: no cluster name before the time ran out (last: %s): %w", t.Spec, last, context.Cause(ctx))
		case <-timer.C:
		}
	}
}

// askName GETs endpoint and returns the status and the Mesh-Cluster header; the body (a whole
// snapshot) is not read.
func askName(ctx context.Context, client *http.Client, endpoint, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", mesh.ContentTypeJSON)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(mesh.HeaderCluster), nil
}

// readEndpoint reports whether /v1/<name> is forwarded: what the page reads, nothing else.
func readEndpoint(name string) bool {
	switch "/v1/" + name {
	case mesh.PathGetEventMesh, mesh.PathMesh, mesh.PathDeltas, mesh.PathWatch, mesh.PathLineage:
		return true
	}
	return false
}

// Handler serves the page over clusters at GET /, and GET /clusters/<name>/v1/<endpoint> (a
// read endpoint) from that cluster's broadcaster: its status, headers and body as they come,
// a watch stream flushed as each event arrives. A broadcaster that cannot be reached is a 502
// with a Problem; an unknown cluster or endpoint a 404. The names must be unique cluster
// names, as Discover returns them.
func Handler(clusters []Cluster, opts ...Option) (http.Handler, error) {
	o := collect(opts)
	if len(clusters) == 0 {
		return nil, fmt.Errorf("%w: no broadcaster", ErrNoName)
	}
	proxies := map[string]*httputil.ReverseProxy{}
	var names []string
	for _, c := range clusters {
		if err := mesh.CheckCluster(c.Name); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrNoName, c.URL, err)
		}
		if _, dup := proxies[c.Name]; dup {
			return nil, fmt.Errorf("%w: %q", ErrDuplicate, c.Name)
		}
		proxies[c.Name] = proxy(c, o)
		names = append(names, c.Name)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", page.Handler(page.WithClusters(names...)))
	mux.HandleFunc("GET /clusters/{cluster}/v1/{endpoint}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := proxies[r.PathValue("cluster")]
		switch {
		case !ok:
			writeProblem(w, http.StatusNotFound, fmt.Sprintf("no cluster %q here; the clusters are %s", r.PathValue("cluster"), strings.Join(names, ", ")))
		case !readEndpoint(r.PathValue("endpoint")):
			writeProblem(w, http.StatusNotFound, fmt.Sprintf("/v1/%s is not forwarded: only %s, %s, %s, %s and %s are",
				r.PathValue("endpoint"), mesh.PathGetEventMesh, mesh.PathMesh, mesh.PathDeltas, mesh.PathWatch, mesh.PathLineage))
		default:
			p.ServeHTTP(w, r)
		}
	})
	return mux, nil
}

// proxy forwards to c's broadcaster: the same endpoint under its base URL, the query as it
// came, the bearer token when there is one.
func proxy(c Cluster, o options) *httputil.ReverseProxy {
	base := *c.URL
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			out := *pr.Out.URL
			out.Scheme, out.Host, out.User = base.Scheme, base.Host, base.User
			out.Path = base.Path + "/v1/" + pr.In.PathValue("endpoint")
			out.RawPath = ""
			pr.Out.URL = &out
			pr.Out.Host = ""
			if o.token != "" {
				pr.Out.Header.Set("Authorization", "Bearer "+o.token)
			}
		},
		// A NAME= given on the command line is not asked at start; the answers say whose they
		// are, and another cluster's are not passed on under this one's name.
		ModifyResponse: func(resp *http.Response) error {
			if said := resp.Header.Get(mesh.HeaderCluster); said != "" && said != c.Name {
				return fmt.Errorf("%w: it serves cluster %q", errOtherCluster, said)
			}
			return nil
		},
		Transport:     o.transport,
		FlushInterval: -1, // a watch stream: every write reaches the page at once
		ErrorLog:      slog.NewLogLogger(o.log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the page went away
			}
			if errors.Is(err, errOtherCluster) {
				o.log.Warn("a broadcaster is another cluster's", "cluster", c.Name, "url", c.URL.Redacted(), "err", err)
				writeProblem(w, http.StatusBadGateway, fmt.Sprintf("cluster %s: the broadcaster at %s is another cluster's: %v", c.Name, c.URL.Redacted(), err))
				return
			}
			o.log.Warn("a broadcaster did not answer", "cluster", c.Name, "url", c.URL.Redacted(), "path", r.URL.Path, "err", err)
			writeProblem(w, http.StatusBadGateway, fmt.Sprintf("cluster %s: the broadcaster at %s did not answer: %v", c.Name, c.URL.Redacted(), err))
		},
	}
}

// errOtherCluster: a broadcaster answered for another cluster than the one it is served as.
var errOtherCluster = errors.New("the answer names another cluster")

func writeProblem(w http.ResponseWriter, status int, why string) {
	w.Header().Set("Content-Type", mesh.ContentTypeJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(mesh.Problem{Error: why})
}
