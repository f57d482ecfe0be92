package resync

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/lineage"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth"
	"github.com/prometheus/client_golang/prometheus"
)

// Mesh is what the endpoints read: mesh/hub.Hub implements it.
type Mesh interface {
	Snapshot() mesh.State
	Ready() bool
}

// Handler serves the resync endpoints.
type Handler struct {
	mesh Mesh
	options
	routes http.Handler
	ends   *prometheus.CounterVec // streams ended, by final event (with WithMetrics)

	deltaSlots deltaSlots // GET /v1/deltas answers being written

	rendered   [2]atomic.Pointer[renderedMesh] // the last snapshot's JSON, shared by requests: [whole]
	renderMu   sync.Mutex                      // one render per new sequence, however many ask
	namespaces atomic.Pointer[meshNamespaces]
}

type options struct {
	log       *slog.Logger
	authz     auth.Authorizer
	deltas    *changelog.Log
	encoder   *codec.Encoder
	watchers  *Watchers
	heartbeat time.Duration
	reauth    time.Duration
	trouble   func() error
	lineage   Lineage
	page      int // the most events of one GET /v1/deltas answer
	maxDeltas int // GET /v1/deltas answers written at once
	metrics   prometheus.Registerer
}

// WithDeltasPage answers GET /v1/deltas with at most n events (the caller asks again from the
// last one); ?limit= may ask for fewer.
func WithDeltasPage(n int) Option {
	return func(o *options) (err error) { o.page, err = option.Positive("deltas page", n); return err }
}

// Lineage answers lineage queries: mesh/hub.Hub implements it.
type Lineage interface {
	Lineage(q lineage.Query, visible func(namespace string) bool) (lineage.Answer, error)
}

// WithLineage serves GET /v1/lineage from l.
func WithLineage(l Lineage) Option {
	return func(o *options) (err error) { o.lineage, err = option.Required("lineage", l); return err }
}

// WithTrouble makes /readyz answer 503 with trouble's error while it has one (a source that
// cannot read its input; the endpoints go on serving the mesh as last read).
func WithTrouble(trouble func() error) Option {
	return func(o *options) (err error) { o.trouble, err = option.Required("trouble", trouble); return err }
}

// DefaultReauthorize is how often a watch stream's caller is authorised again.
const DefaultReauthorize = 10 * time.Second

// WithReauthorize sets how often a watch stream's caller is authorised again (with
// WithAuthorizer): a stream whose access changed ends with an `access` event.
func WithReauthorize(every time.Duration) Option {
	return func(o *options) (err error) {
		o.reauth, err = option.PositiveDuration("reauthorize interval", every)
		return err
	}
}

// Option configures a Handler.
type Option = option.Func[options]

// meshNamespaces are the namespaces of one snapshot: what per-namespace access is checked on.
type meshNamespaces struct {
	at   mesh.Position
	list []string
}

// renderedMesh is a snapshot's EventMesh JSON, kept while the sequence does not move, so a
// crowd of consumers asking for the same snapshot costs one serialisation.
type renderedMesh struct {
	at   mesh.Position
	body []byte

	gzipOnce sync.Once
	gzipped  []byte // the body for clients that accept gzip, compressed on first demand
}

func (m *renderedMesh) gzipBody() []byte {
	m.gzipOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		zw.Write(m.body)
		zw.Close()
		m.gzipped = buf.Bytes()
	})
	return m.gzipped
}

// WithAuthorizer requires callers of the /v1/ endpoints to present a bearer token that a
// accepts, and shows each caller only what a allows (auth.Middleware).
func WithAuthorizer(a auth.Authorizer) Option {
	return func(o *options) (err error) { o.authz, err = option.Required("authorizer", a); return err }
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) (err error) { o.log, err = option.Logger(l); return err }
}

// WithDeltaLog serves GET /v1/deltas from l, encoding events with enc.
func WithDeltaLog(l *changelog.Log, enc *codec.Encoder) Option {
	return func(o *options) error {
		if l == nil || enc == nil {
			return option.Invalid("delta log", "the log and an encoder are required")
		}
		o.deltas, o.encoder = l, enc
		return nil
	}
}

// WithWatch serves GET /v1/watch from ws, sending a comment every heartbeat while idle. It
// needs WithDeltaLog too (resumes are served from the log).
func WithWatch(ws *Watchers, heartbeat time.Duration) Option {
	return func(o *options) error {
		if ws == nil || heartbeat <= 0 {
			return option.Invalid("watch", "watchers and a heartbeat > 0 are required")
		}
		o.watchers, o.heartbeat = ws, heartbeat
		return nil
	}
}

// New returns the resync handler: the /v1/ endpoints (behind auth.Middleware with
// WithAuthorizer), and beside them /healthz and /readyz, which need no token.
// Defaults: open endpoints, no logging, no /v1/deltas or /v1/watch.
func New(m Mesh, opts ...Option) (*Handler, error) {
	o := options{log: option.Discard(), reauth: DefaultReauthorize, page: DefaultDeltasPage, maxDeltas: DefaultMaxDeltaRequests}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	if o.watchers != nil && o.deltas == nil {
		return nil, option.Invalid("watch", "the watch endpoint needs WithDeltaLog too")
	}
	h := &Handler{mesh: m, options: o, deltaSlots: make(deltaSlots, o.maxDeltas)}
	v1 := http.NewServeMux()
	v1.HandleFunc("GET "+mesh.PathGetEventMesh, h.snapshot(false))
	v1.HandleFunc("GET "+mesh.PathMesh, h.snapshot(true))
	if h.deltas != nil {
		v1.HandleFunc("GET "+mesh.PathDeltas, h.catchUp)
	}
	if h.watchers != nil {
		v1.HandleFunc("GET "+mesh.PathWatch, h.watch)
	}
	if h.lineage != nil {
		v1.HandleFunc("GET "+mesh.PathLineage, h.answerLineage)
	}
	var guarded = writeDeadline(jsonMisses(v1))
	if h.authz != nil {
		guard, err := auth.Middleware(h.authz, h, auth.WithLogger(h.log))
		if err != nil {
			return nil, err
		}
		guarded = writeDeadline(guard(jsonMisses(v1))) // a caller let in gets its 404 or 405 as a Problem too
	}
	routes := http.NewServeMux()
	routes.Handle("/v1/", guarded)
	routes.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	routes.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !h.mesh.Ready() {
			writeError(w, http.StatusServiceUnavailable, "mesh not loaded yet")
			return
		}
		if h.trouble != nil {
			if err := h.trouble(); err != nil {
				writeError(w, http.StatusServiceUnavailable, err.Error())
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	h.routes = jsonMisses(routes)
	if h.options.metrics != nil {
		instrumented, err := h.instrument(h.routes)
		if err != nil {
			return nil, err
		}
		h.routes = instrumented
	}
	return h, nil
}

// answerTimeout bounds writing one answer, so a caller that stops reading cannot hold a
// connection and its goroutine for ever (watch streams push theirs forward as they go).
const answerTimeout = time.Minute

func writeDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(answerTimeout))
		next.ServeHTTP(w, r)
	})
}

// jsonMisses answers what mux has no route for (404, and 405 with its Allow header) with a
// Problem body, as every other error is answered.
func jsonMisses(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		miss := &missRecorder{header: http.Header{}, status: http.StatusNotFound}
		mux.ServeHTTP(miss, r) // the mux's own answer: which status, which methods are allowed
		if allow := miss.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		writeError(w, miss.status, fmt.Sprintf("%s %s: %s", r.Method, r.URL.Path, strings.ToLower(http.StatusText(miss.status))))
	})
}

// missRecorder keeps the status and headers of a response and drops its body.
type missRecorder struct {
	header http.Header
	status int
}

func (m *missRecorder) Header() http.Header         { return m.header }
func (m *missRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (m *missRecorder) WriteHeader(status int)      { m.status = status }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.routes.ServeHTTP(w, r) }

// Ready reports whether the mesh is loaded (auth.Mesh).
func (h *Handler) Ready() bool { return h.mesh.Ready() }

// Namespaces lists the current snapshot's namespaces, computed once per sequence (auth.Mesh).
func (h *Handler) Namespaces() []string {
	snap := h.mesh.Snapshot()
	if c := h.namespaces.Load(); c != nil && c.at == snap.Position() {
		return c.list
	}
	c := &meshNamespaces{at: snap.Position(), list: snap.Namespaces()}
	h.namespaces.Store(c)
	return c.list
}

// requireAll answers 403 unless the caller may see every namespace. A delta batch numbers
// every change of the mesh; with other namespaces' changes cut out it would have gaps a
// consumer cannot tell from losses. (GET /v1/watch marks such gaps with position events.)
func requireAll(w http.ResponseWriter, r *http.Request) bool {
	a := auth.FromRequest(r)
	if !a.All {
		writeError(w, http.StatusForbidden, a.Subject+" may list eventtypes in some namespaces only; "+
			"GET /v1/deltas needs it cluster-wide. GET /v1/watch and GET /v1/mesh serve the namespaces allowed")
	}
	return a.All
}

func (h *Handler) snapshot(withPosition bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.mesh.Ready() {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "the mesh is still loading")
			return
		}
		snap := h.mesh.Snapshot()
		access := auth.FromRequest(r)
		pos := snap.Position()
		etag := `"` + pos.Epoch + "-" + strconv.FormatUint(pos.Sequence, 10) + access.Tag() + `"`
		w.Header().Set("ETag", etag)
		w.Header().Set(mesh.HeaderEpoch, pos.Epoch)
		w.Header().Set(mesh.HeaderSequence, strconv.FormatUint(pos.Sequence, 10))
		h.setCluster(w.Header())
		w.Header().Set("Cache-Control", "no-cache")
		if etagMatches(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", mesh.ContentTypeJSON)
		rendered := h.renderFor(snap, access, withPosition)
		w.Header().Add("Vary", "Accept-Encoding")
		if !withPosition && acceptsGzip(r) {
			body := rendered.gzipBody()
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
			return
		}
		prefix, closing := "", ""
		if withPosition {
			prefix, closing = mesh.ClusterSnapshotEnvelope(h.cluster(), pos.Epoch, pos.Sequence)
		}
		body := rendered.body
		w.Header().Set("Content-Length", strconv.Itoa(len(prefix)+len(body)+len(closing)))
		io.WriteString(w, prefix)
		if _, err := w.Write(body); err != nil {
			h.log.Debug("snapshot response cut short", "err", err, "remote", r.RemoteAddr)
			return
		}
		io.WriteString(w, closing)
	}
}

// answerLineage answers GET /v1/lineage from the live graph, as the caller may see it.
func (h *Handler) answerLineage(w http.ResponseWriter, r *http.Request) {
	if !h.mesh.Ready() {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "the mesh is still loading")
		return
	}
	q, err := lineage.ParseQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ans, err := h.lineage.Lineage(q, auth.FromRequest(r).Sees)
	switch {
	case errors.Is(err, lineage.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	w.Header().Set("Content-Type", mesh.ContentTypeJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(mesh.HeaderEpoch, ans.Epoch)
	w.Header().Set(mesh.HeaderSequence, strconv.FormatUint(ans.Sequence, 10))
	_ = json.NewEncoder(w).Encode(ans)
}

// cluster is the cluster the events name (the encoder's; "" without one or without a log).
func (h *Handler) cluster() string {
	if h.encoder == nil {
		return ""
	}
	return h.encoder.Cluster()
}

// setCluster names the cluster of a snapshot or a batch, when there is one.
func (h *Handler) setCluster(header http.Header) {
	if c := h.cluster(); c != "" {
		header.Set(mesh.HeaderCluster, c)
	}
}

// acceptsGzip reads Accept-Encoding (a gzip token without q=0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			return strings.ReplaceAll(params, " ", "") != "q=0"
		}
	}
	return false
}

// renderFor returns snap as the caller may see it, whole (the Mesh JSON of GET /v1/mesh and
// the watch stream) or as the upstream EventMesh JSON: the shared render for whole views, one
// of its own for a partial view.
func (h *Handler) renderFor(snap mesh.State, a auth.Access, whole bool) *renderedMesh {
	if a.All {
		return h.render(snap, whole)
	}
	var buf bytes.Buffer
	if whole {
		_ = snap.WriteMeshOf(&buf, a.Sees)
	} else {
		_ = snap.WriteEventMeshOf(&buf, a.Sees)
	}
	return &renderedMesh{at: snap.Position(), body: buf.Bytes()}
}

// render returns the JSON of snap, serialising it only if no request did yet.
func (h *Handler) render(snap mesh.State, whole bool) *renderedMesh {
	cache := &h.rendered[0]
	if whole {
		cache = &h.rendered[1]
	}
	if c := cache.Load(); c != nil && c.at == snap.Position() {
		return c
	}
	h.renderMu.Lock()
	defer h.renderMu.Unlock()
	if c := cache.Load(); c != nil && c.at == snap.Position() {
		return c
	}
	var buf bytes.Buffer
	if whole {
		_ = snap.WriteMeshOf(&buf, nil) // a bytes.Buffer does not fail
	} else {
		_ = snap.WriteEventMesh(&buf)
	}
	c := &renderedMesh{at: snap.Position(), body: buf.Bytes()}
	if old := cache.Load(); old == nil || old.at.Epoch != c.at.Epoch || old.at.Sequence < c.at.Sequence {
		cache.Store(c) // a slow render of an older snapshot never replaces a newer one
	}
	return c
}

// etagMatches implements If-None-Match's weak comparison: "*", or any listed tag.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// catchUp serves GET /v1/deltas?epoch=E&since=N: the events after N as a CloudEvents batch.
func (h *Handler) catchUp(w http.ResponseWriter, r *http.Request) {
	if !requireAll(w, r) {
		return
	}
	q := r.URL.Query()
	epoch, sinceText := q.Get(mesh.ParamEpoch), q.Get(mesh.ParamSince)
	since, err := strconv.ParseUint(sinceText, 10, 64)
	if epoch == "" || err != nil {
		writeError(w, http.StatusBadRequest, "want ?epoch=E&since=N (N a sequence number)")
		return
	}
	limit := h.page
	if text := q.Get(mesh.ParamLimit); text != "" {
		if limit, err = strconv.Atoi(text); err != nil || limit < 1 || limit > h.page {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1..%d", text, h.page))
			return
		}
	}
	if !h.deltaSlots.take(w) {
		return
	}
	defer h.deltaSlots.release()
	first, last, err := h.deltas.Page(epoch, since, min(limit, DeltasChunk))
	switch {
	case errors.Is(err, changelog.ErrOtherEpoch), errors.Is(err, changelog.ErrExpired):
		w.Header().Set(mesh.HeaderEpoch, h.deltas.Epoch())
		writeGone(w, err)
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// The answer ends at the log's head or after limit events, whichever comes first; it is
	// read from the log a chunk at a time as the caller reads, so a caller that stops reading
	// holds one chunk, not the page.
	end := last
	if head := h.deltas.Head(); head.Epoch == epoch {
		end = max(last, min(since+uint64(limit), head.Sequence))
	}
	w.Header().Set("Content-Type", mesh.ContentTypeBatch)
	w.Header().Set(mesh.HeaderEpoch, epoch)
	h.setCluster(w.Header())
	w.Header().Set(mesh.HeaderSequence, strconv.FormatUint(end, 10))
	out := bufio.NewWriterSize(w, 32<<10)
	out.WriteByte('[')
	h.writeDeltas(out, first, true)
	for last < end {
		var chunk []mesh.Change
		if chunk, last, err = h.deltas.Page(epoch, last, int(min(end-last, DeltasChunk))); err != nil || len(chunk) == 0 {
			// The log moved on under a slow reader: the answer cannot be what its header promised.
			h.log.Debug("GET /v1/deltas: the log moved on while the answer was written; cut short", "err", err, "remote", r.RemoteAddr)
			panic(http.ErrAbortHandler)
		}
		h.writeDeltas(out, chunk, false)
	}
	out.WriteByte(']')
	out.Flush()
}

// DeltasChunk is how many changes a GET /v1/deltas answer or a resuming watch stream reads
// from the log at once: what a caller that stops reading holds of it (about 150 bytes each,
// the entities being shared with the log).
const DeltasChunk = 256

// writeDeltas writes changes as members of a CloudEvents batch, each encoded as it is
// written: eight readers of a whole log hold a buffer each, not eight copies of the log as JSON.
func (h *Handler) writeDeltas(out *bufio.Writer, changes []mesh.Change, first bool) {
	for i, c := range changes {
		ev, err := h.encoder.Structured(c)
		if err != nil { // a bug: the log holds only changes that were encoded once already
			h.log.Error("delta log: change does not encode; response cut short", "change", c.String(), "err", err)
			panic(http.ErrAbortHandler)
		}
		if i > 0 || !first {
			out.WriteByte(',')
		}
		out.Write(ev)
	}
}

// DefaultDeltasPage is the most events one GET /v1/deltas answers (and the largest ?limit=).
const DefaultDeltasPage = 10000

func writeGone(w http.ResponseWriter, err error) {
	reason := mesh.GoneExpired
	if errors.Is(err, changelog.ErrOtherEpoch) {
		reason = mesh.GoneEpoch
	}
	writeProblem(w, http.StatusGone, mesh.Problem{Error: err.Error() + "; take a snapshot (GET " + mesh.PathMesh + ")", Reason: reason})
}

func writeError(w http.ResponseWriter, status int, reason string) {
	writeProblem(w, status, mesh.Problem{Error: reason})
}

func writeProblem(w http.ResponseWriter, status int, p mesh.Problem) {
	w.Header().Set("Content-Type", mesh.ContentTypeJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}
