package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/transports/resync"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync/page/fleet"
	"github.com/event-mesh-broadcaster/broadcaster/transports/tlsfiles"
)

// pageOptions are the flags of `broadcaster page`.
type pageOptions struct {
	urls           []string
	listen         string
	tokenFile      string
	caFile         string
	certFile       string
	keyFile        string
	allowedHosts   []string
	connectTimeout time.Duration
}

func pageFlags(o *pageOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("broadcaster page", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.Func("url", "a broadcaster's base `url`, or NAME=URL to name its cluster here (repeatable; without NAME= its --cluster-name)", func(v string) error {
		o.urls = append(o.urls, v)
		return nil
	})
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8090", "serve the page on this `address`")
	fs.StringVar(&o.tokenFile, "token-file", "", "send the bearer token in this `file` to every broadcaster (default $"+envToken+"; without one the page asks)")
	fs.StringVar(&o.caFile, "ca-file", "", "also trust the PEM CA certificates in this `file` for https broadcasters")
	fs.StringVar(&o.certFile, "tls-cert-file", "", "serve HTTPS (and HTTP/2: one connection for every cluster's stream) with the PEM certificate in this `file` (with --tls-key-file)")
	fs.StringVar(&o.keyFile, "tls-key-file", "", "the PEM private key `file` of --tls-cert-file")
	fs.Func("allowed-hosts", "also serve these Host `names` (comma-separated; loopback names and IP addresses always are, against DNS rebinding)", func(v string) error {
		o.allowedHosts = appendList(o.allowedHosts, v)
		return nil
	})
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Second, "how long to wait at the start for a broadcaster to say its cluster name")
	return fs
}

// pageCommand serves one live page over several broadcasters until ctx ends: the page at /,
// each cluster's read endpoints under /clusters/<name>/ (transports/resync/page/fleet).
// Usage errors wrap errUsage; ready, when not nil, gets the address served.
func pageCommand(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(addr string)) error {
	var o pageOptions
	fs := pageFlags(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: page: %w", errUsage, err)
	}
	targets, err := o.check(fs.Args())
	if err != nil {
		return fmt.Errorf("%w: page: %w", errUsage, err)
	}
	token, transport, err := o.credentials(getenv)
	if err != nil {
		return fmt.Errorf("%w: page: %w", errUsage, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	opts := []fleet.Option{fleet.WithToken(token), fleet.WithTransport(transport), fleet.WithLogger(log)}
	discoverCtx, cancel := context.WithTimeout(ctx, o.connectTimeout)
	clusters, err := fleet.Discover(discoverCtx, targets, opts...)
	cancel()
	switch {
	case errors.Is(err, fleet.ErrNoName), errors.Is(err, fleet.ErrDuplicate):
		return fmt.Errorf("%w: page: --url: %w", errUsage, err)
	case errors.Is(err, fleet.ErrUnauthorized):
		return fmt.Errorf("page: --url: %w: give --token-file or $%s", err, envToken)
	case err != nil:
		return fmt.Errorf("page: --url: %w (--connect-timeout %v)", err, o.connectTimeout)
	}
	handler, err := fleet.Handler(clusters, opts...)
	if err != nil {
		return fmt.Errorf("%w: page: %w", errUsage, err)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("page: --listen: %w", err)
	}
	scheme := "http"
	if o.certFile != "" {
		cert, err := tlsfiles.Load(o.certFile, o.keyFile, tlsfiles.WithLogger(log))
		if err != nil {
			ln.Close()
			return fmt.Errorf("%w: page: --tls-cert-file: %w", errUsage, err)
		}
		cfg := cert.Config()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		ln, scheme = tls.NewListener(ln, cfg), "https"
	} else if len(clusters) > plainHTTPClusters {
		log.Warn("a browser opens at most 6 HTTP/1.1 connections to one address and every cluster's watch stream holds one: "+
			"serve HTTPS (--tls-cert-file), so that they share one HTTP/2 connection", "clusters", len(clusters), "at most", plainHTTPClusters)
	}
	srv := &http.Server{
		Handler:           resync.AllowHosts(o.allowedHosts, handler),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx }, // a stop ends the watch streams
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	var names []string
	for _, c := range clusters {
		names = append(names, c.Name+" ("+c.URL.Redacted()+")")
	}
	log.Info("serving the page", "url", scheme+"://"+ln.Addr().String()+"/", "clusters", strings.Join(names, ", "))
	if ready != nil {
		ready(ln.Addr().String())
	}
	if err := serve(ctx, srv, ln); err != nil {
		return fmt.Errorf("page: %w", err)
	}
	return nil
}

// plainHTTPClusters is the most clusters a page served over plain HTTP follows without
// queueing: a browser opens 6 HTTP/1.1 connections to one address, each watch stream holds
// one, and one stays for snapshots and lineage questions.
const plainHTTPClusters = 5

// check validates the flags before anything is contacted and returns the broadcasters.
func (o *pageOptions) check(rest []string) ([]fleet.Target, error) {
	switch {
	case len(rest) > 0:
		return nil, fmt.Errorf("unexpected arguments %q", strings.Join(rest, " "))
	case len(o.urls) == 0:
		return nil, errors.New("give at least one --url (a broadcaster's base URL, or NAME=URL)")
	case o.connectTimeout <= 0:
		return nil, fmt.Errorf("--connect-timeout %v: want > 0", o.connectTimeout)
	case (o.certFile == "") != (o.keyFile == ""):
		return nil, errors.New("--tls-cert-file and --tls-key-file: give both or neither")
	}
	var targets []fleet.Target
	var errs []error
	for _, u := range o.urls {
		t, err := fleet.Parse(u)
		if err != nil {
			errs = append(errs, fmt.Errorf("--url: %w", err))
			continue
		}
		targets = append(targets, t)
	}
	return targets, errors.Join(errs...)
}

// credentials reads the bearer token (--token-file, else $BROADCASTER_TOKEN) and builds the
// transport to the broadcasters (with --ca-file's certificates).
func (o *pageOptions) credentials(getenv func(string) string) (string, http.RoundTripper, error) {
	token, err := snapshotOptions{tokenFile: o.tokenFile}.bearerToken(getenv)
	if err != nil {
		return "", nil, err
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return "", nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return "", nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", o.caFile)
		}
		tlsConfig.RootCAs = pool
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	return token, transport, nil
}
