package page

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

var (
	//go:embed assets/index.html
	indexHTML string
	//go:embed assets/page.css
	pageCSS string
	//go:embed assets/page.js
	pageJS string
)

// Option changes the page a Handler or Document serves.
type Option func(*options)

type options struct {
	clusters []string
}

// WithClusters makes the page a merged view of several broadcasters, one per cluster: it
// keeps a replica of each by the resync algorithm, from the endpoints at
// clusters/<name>/v1/... beside the page (what transports/resync/page/fleet serves), and
// draws each namespace of each cluster apart. Without it (a broadcaster's own page) the page
// follows the endpoints at v1/... beside it.
func WithClusters(names ...string) Option {
	return func(o *options) { o.clusters = append(o.clusters, names...) }
}

// Handler serves the page. Mount it on the exact root path (GET /{$}); every other path stays
// with the resync endpoints.
func Handler(opts ...Option) http.Handler {
	doc, csp := Document(opts...)
	etag := fmt.Sprintf(`"%x"`, sha256.Sum256(doc))
	modified := time.Now()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		http.ServeContent(w, r, "index.html", modified, bytes.NewReader(doc))
	})
}

// entityKind is a row of the contract's entity kind table as the page reads it: which lists a
// snapshot holds, and which kinds it draws (the upstream model's; it skips the others).
type entityKind struct {
	Name     string `json:"name"`
	List     string `json:"list"`
	Title    string `json:"title"`
	Upstream bool   `json:"upstream"`
}

// entityKindsJSON is the entity kind table (mesh.EntityKinds) as JSON, for a data block of the
// page: a JSON script block is not run, so the Content-Security-Policy need not allow it.
func entityKindsJSON() string {
	var rows []entityKind
	for _, k := range mesh.EntityKinds() {
		rows = append(rows, entityKind{Name: k.String(), List: k.List(), Title: k.Title(), Upstream: k.Upstream()})
	}
	data, _ := json.Marshal(rows) // strings and bools always marshal
	// Inside <script>, "</" would end the block; the names hold none, but stay safe.
	return strings.ReplaceAll(string(data), "</", `<\/`)
}

// clustersJSON is the list of clusters for a data block of the page (JSON, not run): [] for a
// broadcaster's own page.
func clustersJSON(names []string) string {
	if names == nil {
		names = []string{}
	}
	data, _ := json.Marshal(names) // strings always marshal
	return strings.ReplaceAll(string(data), "</", `<\/`)
}

// Document returns the page with its style and script inline, and the Content-Security-Policy
// that allows exactly those two (by hash) and requests to its own origin, nothing else. The
// options change only the data blocks, so the policy is the same for every page.
func Document(opts ...Option) (doc []byte, csp string) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	html := strings.Replace(indexHTML, "/*STYLE*/", pageCSS, 1)
	html = strings.Replace(html, "/*KINDS*/", entityKindsJSON(), 1)
	html = strings.Replace(html, "/*CLUSTERS*/", clustersJSON(o.clusters), 1)
	html = strings.Replace(html, "/*SCRIPT*/", pageJS, 1)
	csp = "default-src 'none'; script-src " + hash(pageJS) + "; style-src " + hash(pageCSS) +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return []byte(html), csp
}
