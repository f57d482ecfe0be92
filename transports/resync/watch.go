package resync

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth"
)

// Watchers fans changes out to the GET /v1/watch connections. Each has its own bounded buffer:
// a watcher that falls behind is cut off (with a final event saying so) instead of slowing the
// engine or the other watchers.
type Watchers struct {
	buffer  int
	max     int // connections served at once; more are refused
	mine    int // of them, per caller identity
	encoder *codec.Encoder
	log     *slog.Logger

	mu    sync.Mutex
	conns map[*watcher]struct{}
	per   map[string]int // open streams by caller identity

	closing   chan struct{} // closed by Close: every stream ends
	closeOnce sync.Once
}

// Close ends every watch stream (with a final `shutdown` event), so a server shutting down
// need not wait for connections that never finish by themselves. Register it with
// http.Server.RegisterOnShutdown.
func (ws *Watchers) Close() { ws.closeOnce.Do(func() { close(ws.closing) }) }

type watcher struct {
	subject string
	frames  chan []frame
	cut     chan struct{} // closed when the watcher fell behind or the stream was reset
	once    sync.Once
	why     string // why cut was closed (set before)
}

// cutOff ends the watcher's stream with a cutoff event saying why. ws.mu is held.
func (ws *Watchers) cutOff(w *watcher, why string) {
	w.once.Do(func() { w.why = why; close(w.cut) })
	ws.forget(w)
}

// forget takes w off the connections. ws.mu is held.
func (ws *Watchers) forget(w *watcher) {
	if _, ok := ws.conns[w]; !ok {
		return
	}
	delete(ws.conns, w)
	if ws.per[w.subject]--; ws.per[w.subject] <= 0 {
		delete(ws.per, w.subject)
	}
}

// frame is one change, encoded once as its SSE event for every watcher.
type frame struct {
	epoch     string
	seq       uint64
	opens     bool   // the first change of an epoch's opening batch
	namespace string // of the entity: what a caller with partial access may see
	sse       []byte
	change    mesh.Change // for a partial view, encoded again without what it may not see
}

type watchersOptions struct {
	buffer, max, mine int
	log               *slog.Logger
}

// WatchersOption configures Watchers.
type WatchersOption = option.Func[watchersOptions]

// DefaultWatchBuffer is how many batches of changes a watcher may lag by before it is cut off.
const DefaultWatchBuffer = 4096

// DefaultMaxWatchers bounds the watch streams served at once (each costs a goroutine, its
// buffer and a connection).
const DefaultMaxWatchers = 1000

// DefaultMaxWatchersPerIdentity bounds the watch streams of one caller identity (with access
// control), so one caller cannot take every stream.
const DefaultMaxWatchersPerIdentity = 100

// WithMaxWatchersPerIdentity serves at most n watch streams at once to one caller identity.
func WithMaxWatchersPerIdentity(n int) WatchersOption {
	return func(o *watchersOptions) (err error) {
		o.mine, err = option.Positive("max watchers per identity", n)
		return err
	}
}

// WithMaxWatchers serves at most n watch streams at once; more are answered 503 with
// Retry-After.
func WithMaxWatchers(n int) WatchersOption {
	return func(o *watchersOptions) (err error) { o.max, err = option.Positive("max watchers", n); return err }
}

// WithWatchBuffer lets each watcher lag by n batches of changes before it is cut off.
func WithWatchBuffer(n int) WatchersOption {
	return func(o *watchersOptions) (err error) { o.buffer, err = option.Positive("watch buffer", n); return err }
}

// WithWatchLogger logs the changes that cannot be encoded.
func WithWatchLogger(l *slog.Logger) WatchersOption {
	return func(o *watchersOptions) (err error) { o.log, err = option.Logger(l); return err }
}

// NewWatchers returns the fan-out of GET /v1/watch; each change is encoded once with enc,
// whatever the number of watchers. Defaults: DefaultWatchBuffer, no logging.
func NewWatchers(enc *codec.Encoder, opts ...WatchersOption) (*Watchers, error) {
	o := watchersOptions{buffer: DefaultWatchBuffer, max: DefaultMaxWatchers, mine: DefaultMaxWatchersPerIdentity, log: option.Discard()}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	if _, err := option.Required("encoder", enc); err != nil {
		return nil, err
	}
	return &Watchers{buffer: o.buffer, max: o.max, mine: o.mine, encoder: enc, log: o.log, conns: map[*watcher]struct{}{}, per: map[string]int{},
		closing: make(chan struct{})}, nil
}

// Publish hands a batch to every watcher without waiting; it is a mesh/hub Listener.
func (ws *Watchers) Publish(b mesh.Batch) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if len(ws.conns) == 0 {
		return
	}
	if b.Resets {
		// The history the streams stand on is gone (a follower loaded the leader's snapshot):
		// each resumes from wherever it is, or starts over with a snapshot.
		for w := range ws.conns {
			ws.cutOff(w, "the sequence space was reset (this replica re-synchronised with the leader): reconnect with Last-Event-ID")
		}
		return
	}
	frames := make([]frame, 0, len(b.Changes))
	opens := b.Opens
	for _, c := range b.Changes {
		sse, err := deltaEvent(ws.encoder, c)
		if err != nil {
			ws.log.Error("watch: change does not encode", "change", c.String(), "err", err)
			continue
		}
		c.Previous = nil
		frames = append(frames, frame{c.Epoch, c.Sequence, opens, c.Key.Namespace, sse, c})
		opens = false
	}
	for w := range ws.conns {
		select {
		case w.frames <- frames:
		default:
			ws.cutOff(w, "too slow: the watcher fell more than its buffer behind")
		}
	}
}

// deltaEvent is a change as one SSE event: `event: delta`, its meshseq as id, the structured
// CloudEvent (compact JSON, so one data line) as data.
func deltaEvent(enc *codec.Encoder, c mesh.Change) ([]byte, error) {
	ev, err := enc.Structured(c)
	if err != nil {
		return nil, err
	}
	return appendEvent(make([]byte, 0, len(ev)+64), mesh.SSEDelta, c.Epoch, c.Sequence, ev), nil
}

// appendEvent appends one SSE event with its id (mesh.StreamID: the epoch and the sequence);
// data must be one line (compact JSON).
func appendEvent(b []byte, name, epoch string, seq uint64, data []byte) []byte {
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\nid: "...)
	b = append(b, mesh.StreamID(epoch, seq)...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// endEvent is an SSE event that ends the stream: no id, since it is no place to resume from.
func endEvent(name string, end mesh.StreamEnd) []byte {
	data, _ := json.Marshal(end) // strings and a number always marshal
	return append(append([]byte("event: "+name+"\ndata: "), data...), "\n\n"...)
}

// positionEvent tells a watcher with partial access that it has seen everything of its view up
// to seq: the changes in between were in namespaces it may not see. Its id keeps the stream's
// ids gap-free, so a consumer can still tell a loss from a filtered change.
func positionEvent(epoch string, seq uint64) []byte {
	data, _ := json.Marshal(mesh.Position{Epoch: epoch, Sequence: seq}) // a string and a number always marshal
	return appendEvent(nil, mesh.SSEPosition, epoch, seq, data)
}

// Len is the number of connected watchers.
func (ws *Watchers) Len() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.conns)
}

// add registers a watcher of subject ("": no access control); nil and why when as many as
// allowed are connected, in all or for subject.
func (ws *Watchers) add(subject string) (*watcher, string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	switch {
	case len(ws.conns) >= ws.max:
		return nil, fmt.Sprintf("too many watch streams (%d); try again later, or take a snapshot", ws.max)
	case subject != "" && ws.per[subject] >= ws.mine:
		return nil, fmt.Sprintf("too many watch streams for %s (%d); close some, or try again later", subject, ws.mine)
	}
	w := &watcher{subject: subject, frames: make(chan []frame, ws.buffer), cut: make(chan struct{})}
	ws.conns[w] = struct{}{}
	ws.per[subject]++
	return w, ""
}

func (ws *Watchers) remove(w *watcher) {
	ws.mu.Lock()
	ws.forget(w)
	ws.mu.Unlock()
}

// watch serves Server-Sent Events: first the snapshot (one `snapshot` event, unless a
// Last-Event-ID can be resumed from the delta log), then one `delta` event per change with the
// meshseq as its id. Comments keep idle connections alive; a watcher too slow to keep up gets a
// final `cutoff` event.
func (h *Handler) watch(rw http.ResponseWriter, r *http.Request) {
	statuses := wantsStatuses(r)
	if statuses && !h.mesh.Ready() {
		rw.Header().Set("Retry-After", "1")
		writeError(rw, http.StatusServiceUnavailable, "the mesh is still loading")
		return
	}
	// Register first: every change after the snapshot (or the resume point) is then in w.frames.
	w, refused := h.watchers.add(auth.FromRequest(r).Subject)
	if w == nil {
		refuseBusy(rw, statuses, refused)
		return
	}
	defer h.watchers.remove(w)
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Cache-Control", "no-cache")
	rw.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	h.setCluster(rw.Header())
	rw.WriteHeader(http.StatusOK)
	s := newStream(rw, auth.FromRequest(r), max(30*time.Second, 2*h.heartbeat))
	if h.ends != nil {
		s.ended = func(event string) { h.ends.WithLabelValues(event).Inc() }
	}
	if !s.access.All {
		s.scope = h.scoper()
	}
	s.out.WriteString(retryField(mesh.RetryStream))
	if !h.awaitLoaded(r.Context(), s, w) || !h.start(s, r) || !s.send() {
		return
	}
	beat := time.NewTicker(h.heartbeat)
	defer beat.Stop()
	recheck := auth.Recheck(r)
	var reauth <-chan time.Time
	if recheck != nil {
		t := time.NewTicker(h.reauth)
		defer t.Stop()
		reauth = t.C
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-reauth:
			if !h.stillAllowed(r.Context(), s, recheck) {
				return
			}
		case <-h.watchers.closing:
			// The hub emits nothing any more (a stopping broadcaster stops it first): what is
			// buffered is the end of the stream, and the last id tells a follower taking over
			// that it has everything.
			s.framesWaiting(w)
			s.end(mesh.SSEShutdown, mesh.StreamEnd{Reason: "the broadcaster is stopping", Sequence: s.last})
			return
		case <-w.cut:
			s.end(mesh.SSECutoff, mesh.StreamEnd{Reason: w.why, Sequence: s.last})
			return
		case <-beat.C:
			s.out.WriteString(": heartbeat\n\n")
			if !s.send() {
				return
			}
		case batch := <-w.frames:
			// Under load, take every batch already waiting before flushing: one write and one
			// flush for many events.
			s.frames(batch)
			s.framesWaiting(w)
			if !s.send() {
				return
			}
		}
	}
}

// wantsStatuses says whether the caller asked to hear "not now" as a status code (an Accept
// naming application/json, as mesh.AcceptWatchStatuses does) rather than in a way a stock
// EventSource obeys: it closes for good on any answer but a 200 stream.
func wantsStatuses(r *http.Request) bool {
	for _, accept := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(accept, ",") {
			media, _, _ := strings.Cut(part, ";")
			switch strings.ToLower(strings.TrimSpace(media)) {
			case mesh.ContentTypeJSON, "application/problem+json":
				return true
			}
		}
	}
	return false
}

// refuseBusy answers a watch beyond the caps: 503 with Retry-After for a caller that asked for
// status codes; for others (an EventSource) a 200 stream that sets `retry:`, says why in a
// `busy` event and ends, so the client comes back by itself after the delay.
func refuseBusy(rw http.ResponseWriter, statuses bool, why string) {
	if statuses {
		rw.Header().Set("Retry-After", strconv.Itoa(mesh.RetryBusy/1000))
		writeError(rw, http.StatusServiceUnavailable, why)
		return
	}
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Cache-Control", "no-cache")
	rw.WriteHeader(http.StatusOK)
	io.WriteString(rw, retryField(mesh.RetryBusy))
	rw.Write(endEvent(mesh.SSEBusy, mesh.StreamEnd{Reason: why}))
}

// retryField is an SSE `retry:` line on its own: an EventSource waits ms before reconnecting.
func retryField(ms int) string { return "retry: " + strconv.Itoa(ms) + "\n\n" }

// loadPoll is how often a stream held while the mesh loads looks whether it is loaded.
const loadPoll = 100 * time.Millisecond

// awaitLoaded holds a stream that came while the mesh loads (with heartbeats, so neither the
// client nor a proxy gives up) until the mesh is loaded: it then starts with the snapshot. It
// returns false when the stream ended meanwhile.
func (h *Handler) awaitLoaded(ctx context.Context, s *stream, w *watcher) bool {
	if h.mesh.Ready() {
		return true
	}
	if !s.send() {
		return false
	}
	poll := time.NewTicker(loadPoll)
	defer poll.Stop()
	beat := time.NewTicker(h.heartbeat)
	defer beat.Stop()
	for !h.mesh.Ready() {
		select {
		case <-ctx.Done():
			return false
		case <-h.watchers.closing:
			s.end(mesh.SSEShutdown, mesh.StreamEnd{Reason: "the broadcaster is stopping"})
			return false
		case <-w.cut:
			s.end(mesh.SSECutoff, mesh.StreamEnd{Reason: w.why})
			return false
		case <-beat.C:
			s.out.WriteString(": heartbeat\n\n")
			if !s.send() {
				return false
			}
		case <-poll.C:
		}
	}
	return true
}

// stillAllowed decides the caller's access again while the stream lasts: a revoked token ends
// it, and a changed view makes the caller start over with a snapshot of the new one. It
// returns false when the stream has ended.
func (h *Handler) stillAllowed(ctx context.Context, s *stream, recheck func(context.Context) (auth.Access, error)) bool {
	access, err := recheck(ctx)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		s.end(mesh.SSEAccess, mesh.StreamEnd{Reason: "access revoked: the token is not accepted any more", Sequence: s.last})
		return false
	case err != nil:
		h.log.Warn("watch: cannot check a caller's access again; the stream goes on", "err", err)
	case !access.All && len(access.Namespaces) == 0:
		s.end(mesh.SSEAccess, mesh.StreamEnd{Reason: "access revoked: " + access.Subject + " may list eventtypes in no namespace of the mesh", Sequence: s.last})
		return false
	case !access.Same(s.access):
		s.end(mesh.SSEAccess, mesh.StreamEnd{Reason: "access changed: reconnect without Last-Event-ID for the new view", Sequence: s.last})
		return false
	}
	return true
}

// framesWaiting writes every batch already waiting for the stream, without blocking.
func (s *stream) framesWaiting(w *watcher) {
	for {
		select {
		case batch := <-w.frames:
			s.frames(batch)
		default:
			s.accountSkipped()
			return
		}
	}
}

// start writes where the stream begins: the deltas after a Last-Event-ID the log still holds,
// or else the snapshot. false when it cannot go on.
func (h *Handler) start(s *stream, r *http.Request) bool {
	if epoch, last, ok := h.resumePoint(r); ok {
		if resumed, ok := h.resumeFromLog(s, epoch, last); resumed {
			return ok
		}
	}
	snap := h.mesh.Snapshot()
	pos := snap.Position()
	s.epoch, s.last = pos.Epoch, pos.Sequence
	head, tail := mesh.ClusterSnapshotEnvelope(h.cluster(), s.epoch, s.last)
	fmt.Fprintf(s.out, "event: %s\nid: %s\ndata: %s", mesh.SSESnapshot, mesh.StreamID(s.epoch, s.last), head)
	s.out.Write(h.renderFor(snap, s.access, true).body)
	s.out.WriteString(tail + "\n\n")
	return true
}

// resumeFromLog streams the changes of epoch after last from the delta log, a chunk at a time
// as the caller reads (DeltasChunk changes held at most, however long the log), up to its head;
// the live changes follow from the watcher's buffer. resumed is false when the log cannot
// serve the resume point (the stream starts with a snapshot instead); ok is false when the
// stream cannot go on (the caller went away, or the log dropped changes the stream had not sent
// yet: it ends with a cutoff event, and the caller resumes again or takes a snapshot).
func (h *Handler) resumeFromLog(s *stream, epoch string, last uint64) (resumed, ok bool) {
	chunk, next, err := h.deltas.Page(epoch, last, DeltasChunk)
	if err != nil {
		return false, false
	}
	s.epoch, s.last = epoch, last
	for len(chunk) > 0 {
		for _, c := range chunk {
			sse, err := deltaEvent(h.encoder, c)
			if err != nil {
				h.log.Error("watch: change does not encode", "change", c.String(), "err", err)
				return true, false
			}
			s.write(c, sse)
		}
		s.accountSkipped()
		if len(chunk) < DeltasChunk {
			return true, true
		}
		if !s.send() {
			return true, false
		}
		if chunk, next, err = h.deltas.Page(epoch, next, DeltasChunk); err != nil {
			s.end(mesh.SSECutoff, mesh.StreamEnd{Reason: "too slow: the delta log dropped changes while the stream resumed from it: " +
				"resume again with Last-Event-ID (or take a snapshot)", Sequence: s.last})
			return true, false
		}
	}
	return true, true
}

// stream is one watch connection: where it is, and what its caller may see.
type stream struct {
	out      *bufio.Writer
	rc       *http.ResponseController
	patience time.Duration // the longest a burst of writes may take
	access   auth.Access
	epoch    string
	last     uint64 // the id of the last event sent
	skipped  uint64 // the newest change cut out of the caller's view
	// scope, for a partial view, encodes a change without what names namespaces the caller
	// may not see (nil: the shared event as is).
	scope func(c mesh.Change, a auth.Access, shared []byte) ([]byte, bool)
	ended func(event string) // counts the final event (nil: not counted)
}

func newStream(rw http.ResponseWriter, access auth.Access, patience time.Duration) *stream {
	s := &stream{out: bufio.NewWriterSize(rw, 32<<10), rc: http.NewResponseController(rw), patience: patience, access: access}
	// Every write must finish in time, so a peer that stopped reading cannot hold the
	// connection's goroutine: the deadline is pushed forward before each burst of writes.
	_ = s.rc.SetWriteDeadline(time.Now().Add(patience))
	return s
}

// send flushes what was written; false when the peer is gone or too slow.
func (s *stream) send() bool {
	ok := s.out.Flush() == nil && s.rc.Flush() == nil
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.patience))
	return ok
}

// frames writes the changes of a batch not sent yet; a batch opening another epoch (the hub
// restarted) streams that epoch in whole.
func (s *stream) frames(batch []frame) {
	for _, f := range batch {
		if f.opens && f.epoch != s.epoch {
			s.epoch, s.last, s.skipped = f.epoch, 0, 0
		}
		if f.epoch != s.epoch || f.seq <= s.last {
			continue // already in the snapshot or the resumed deltas
		}
		s.write(f.change, f.sse)
	}
}

// write sends one change the caller may see, first accounting with a position event for those
// it may not see since the last event sent.
func (s *stream) write(c mesh.Change, sse []byte) {
	seq := c.Sequence
	if !s.access.Sees(c.Key.Namespace) {
		s.skipped = seq
		return
	}
	if s.scope != nil {
		scoped, ok := s.scope(c, s.access, sse)
		if !ok {
			s.skipped = seq // cannot be shown without what the caller may not see: accounted for
			return
		}
		sse = scoped
	}
	if s.skipped > s.last {
		s.out.Write(positionEvent(s.epoch, seq-1))
	}
	s.out.Write(sse)
	s.last = seq
}

// scoper returns what encodes a change for a partial view: the entity as mesh.State.ForView
// shows it, with the Backstage ids the replica knows now. ok is false when it cannot be shown.
func (h *Handler) scoper() func(mesh.Change, auth.Access, []byte) ([]byte, bool) {
	return func(c mesh.Change, a auth.Access, shared []byte) ([]byte, bool) {
		entity := h.mesh.Snapshot().ForView(c.Kind, c.Entity, a.Sees)
		switch {
		case entity == nil:
			return nil, false
		case bytes.Equal(entity, c.Entity):
			return shared, true // nothing hidden: the event every watcher gets
		}
		c.Entity = entity
		sse, err := deltaEvent(h.encoder, c)
		if err != nil {
			h.log.Error("watch: change does not encode", "change", c.String(), "err", err)
			return nil, false
		}
		return sse, true
	}
}

// accountSkipped ends a burst: changes cut out since the last event sent get a position event.
func (s *stream) accountSkipped() {
	if s.skipped > s.last {
		s.out.Write(positionEvent(s.epoch, s.skipped))
		s.last = s.skipped
	}
}

// end sends a final event.
func (s *stream) end(name string, end mesh.StreamEnd) {
	if s.ended != nil {
		s.ended(name)
	}
	s.out.Write(endEvent(name, end))
	s.send()
}

// resumePoint reads Last-Event-ID (and the optional ?epoch= the client saw): ok when the
// stream can go on from the delta log without a snapshot. The id names its epoch
// (mesh.StreamID); an old numeric id without ?epoch= is taken to be of the current epoch.
func (h *Handler) resumePoint(r *http.Request) (epoch string, last uint64, ok bool) {
	id := r.Header.Get(mesh.HeaderLastEventID)
	if id == "" || h.deltas == nil {
		return "", 0, false
	}
	idEpoch, last, err := mesh.ParseStreamID(id)
	if err != nil {
		return "", 0, false
	}
	epoch = h.deltas.Epoch()
	for _, e := range []string{idEpoch, r.URL.Query().Get(mesh.ParamEpoch)} {
		if e != "" && e != epoch {
			return "", 0, false
		}
	}
	return epoch, last, true
}
