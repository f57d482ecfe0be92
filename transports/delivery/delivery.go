package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
)

// DefaultBatch is how many changes a worker hands its publisher at once.
const DefaultBatch = 512

type options struct {
	retry   time.Duration // the first wait before a failed reconcile is tried again
	batch   int
	log     *slog.Logger
	metrics *Metrics
	start   mesh.Position
	owed    reconcile
}

// Option configures a Worker.
type Option = option.Func[options]

// DefaultReconcileRetry is the first wait before a failed reconcile is tried again; it doubles
// up to MaxReconcileRetry while it keeps failing.
const (
	DefaultReconcileRetry = 5 * time.Second
	MaxReconcileRetry     = 5 * time.Minute
)

// WithReconcileRetry waits d before trying a failed reconcile again (then twice as long, up to
// MaxReconcileRetry).
func WithReconcileRetry(d time.Duration) Option {
	return func(o *options) (err error) { o.retry, err = option.PositiveDuration("reconcile retry", d); return err }
}

// WithBatch hands the publisher at most n changes at once.
func WithBatch(n int) Option {
	return func(o *options) (err error) { o.batch, err = option.Positive("delivery batch", n); return err }
}

// WithLogger logs gaps, rejections, failures and reconciles.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) (err error) { o.log, err = option.Logger(l); return err }
}

// WithMetrics counts what the worker does in m.
func WithMetrics(m *Metrics) Option {
	return func(o *options) (err error) { o.metrics, err = option.Required("metrics", m); return err }
}

// From starts the worker after pos instead of at the log's start: a new leader continues its
// predecessor's sequence space from where that one stopped. A state carrier then reconciles
// once: it drops stale keys, and with republish also publishes every entity's state again
// (the predecessor may have published changes this replica never saw).
func From(pos mesh.Position, republish bool) Option {
	return func(o *options) error {
		o.start, o.owed = pos, reconcileStale
		if republish {
			o.owed = reconcileAll
		}
		return nil
	}
}

// Worker delivers the change log to one Publisher. Run and Flush are called one after the
// other, never at once.
type Worker struct {
	name    string
	changes *changelog.Log
	pub     transports.Publisher
	options
	m                       *transportMetrics
	delivered, missed, lost atomic.Uint64

	pos       mesh.Position // the last change handed over
	reconcile reconcile     // owed to a Reconciler
	retryIn   time.Duration // after a failed reconcile: the wait before the next try (0: none failed)
	retryAt   time.Time     // when that try is due
	fatal     error         // the destination cannot be used (transports.ErrFatal)
}

// reconcile is what a state carrier owes: nothing, dropping stale keys (a new epoch), or also
// republishing every entity's state (it missed changes).
type reconcile uint8

const (
	reconcileNone reconcile = iota
	reconcileStale
	reconcileAll
)

// New returns a worker delivering log to p; name labels its logs and metrics (it must not hold
// credentials). Defaults: DefaultBatch, no logging, no metrics.
func New(name string, log *changelog.Log, p transports.Publisher, opts ...Option) (*Worker, error) {
	o := options{batch: DefaultBatch, retry: DefaultReconcileRetry, log: option.Discard()}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	if log == nil || p == nil {
		return nil, option.Invalid("delivery", "%s: a log and a publisher are required", name)
	}
	o.log = o.log.With("transport", name)
	if c, ok := p.(interface{ Connected() bool }); ok && o.metrics != nil {
		o.metrics.connected.mu.Lock()
		o.metrics.connected.up[name] = c.Connected // the latest worker of a name reports
		o.metrics.connected.mu.Unlock()
	}
	return &Worker{name: name, changes: log, pub: p, options: o, m: o.metrics.of(name), pos: o.start, reconcile: o.owed}, nil
}

// Name labels the worker's transport.
func (w *Worker) Name() string { return w.name }

// Run delivers until ctx ends (nil) or the destination cannot be used at all (an error
// wrapping transports.ErrFatal). What it could not deliver by then stays for Flush.
func (w *Worker) Run(ctx context.Context) error {
	if !w.reconcileIfOwed(ctx) { // owed from the start (From): a term that continues another
		return nil
	}
	for {
		read, cancel := ctx, context.CancelFunc(func() {})
		if w.retryIn > 0 { // a reconcile failed: it is tried again when due, changes or not
			read, cancel = context.WithDeadline(ctx, w.retryAt)
		}
		b, err := w.changes.Read(read, w.pos, w.batch)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil: // the time to try the reconcile again
			if !w.reconcileIfOwed(ctx) {
				return nil
			}
		case !w.deliver(ctx, b):
			return w.fatal
		}
	}
}

// Flush delivers what the log holds beyond the worker's position, within ctx (a shutdown
// deadline), and says what it could not.
func (w *Worker) Flush(ctx context.Context) error {
	head := w.changes.Head()
	for w.pos != head && ctx.Err() == nil {
		read, cancel := context.WithCancel(ctx)
		cancel() // never wait: only what is there
		b, err := w.changes.Read(read, w.pos, w.batch)
		if err != nil {
			break
		}
		if !w.deliver(ctx, b) {
			break
		}
	}
	if w.pos != head {
		return fmt.Errorf("transport %s: changes after meshseq %d not delivered before the deadline: %w", w.name, w.pos.Sequence, context.Cause(ctx))
	}
	return nil
}

// Close closes the publisher.
func (w *Worker) Close(ctx context.Context) error { return w.pub.Close(ctx) }

// deliver hands one batch over; false when ctx ended first (the batch will be read again).
func (w *Worker) deliver(ctx context.Context, b changelog.Batch) bool {
	if b.Opens || b.Missed > 0 {
		w.retryIn = 0 // a new reason to reconcile: tried at once, whatever failed before
	}
	if b.Opens {
		w.reconcile = max(w.reconcile, reconcileStale)
	}
	if b.Missed > 0 {
		first := b.Changes[0].Sequence
		w.log.Warn("fell behind the change log: the destination misses these changes (a gap consumers will see)",
			"missed", b.Missed, "from", first-b.Missed, "to", first-1)
		w.m.gaps.Inc()
		w.m.missed.Add(float64(b.Missed))
		w.missed.Add(b.Missed)
		w.reconcile = reconcileAll
	}
	start := time.Now()
	err := w.pub.Publish(ctx, b.Changes)
	switch {
	case err == nil:
		w.m.delivered.Add(float64(len(b.Changes)))
		w.delivered.Add(uint64(len(b.Changes)))
	case errors.Is(err, transports.ErrRejected):
		n := countRejected(err)
		w.m.rejected.Add(float64(n))
		w.m.delivered.Add(float64(len(b.Changes) - n))
		w.lost.Add(uint64(n))
		w.delivered.Add(uint64(len(b.Changes) - n))
		w.log.Error("destination rejected changes; skipped (consumers will see a meshseq gap)", "err", err)
	case ctx.Err() != nil:
		return false
	case errors.Is(err, transports.ErrFatal):
		w.fatal = fmt.Errorf("transport %s: %w", w.name, err)
		return false
	default:
		w.m.failed.Add(float64(len(b.Changes)))
		w.lost.Add(uint64(len(b.Changes)))
		w.log.Error("transport failed; changes lost", "changes", len(b.Changes), "err", err)
	}
	w.m.latency.Observe(time.Since(start).Seconds())
	w.m.lastSuccess.SetToCurrentTime()
	last := b.Changes[len(b.Changes)-1]
	w.pos = mesh.Position{Epoch: last.Epoch, Sequence: last.Sequence}
	w.m.behind.Set(float64(w.changes.Head().Sequence - w.pos.Sequence))
	return w.reconcileIfOwed(ctx)
}

// reconcileIfOwed makes a state carrier equal to the mesh when it may have drifted.
func (w *Worker) reconcileIfOwed(ctx context.Context) bool {
	r, ok := w.pub.(transports.Reconciler)
	if !ok || w.reconcile == reconcileNone {
		w.reconcile = reconcileNone
		return true
	}
	if w.retryIn > 0 && time.Now().Before(w.retryAt) {
		return true // a failed one is tried again when due (Run)
	}
	if w.pos.Sequence < w.changes.Opened(w.pos.Epoch) {
		// The epoch's opening is read in batches: the destination gets all of it first, or a
		// state carrier would find most of the mesh missing (and an MQTT sweep would count
		// only the first batch's retained messages).
		return true
	}
	err := r.Reconcile(ctx, w.reconcile == reconcileAll)
	switch {
	case err == nil:
		w.m.reconciles.Inc()
		w.reconcile, w.retryIn = reconcileNone, 0
	case ctx.Err() != nil:
		return false
	default:
		// Tried again later, clearing only: what was republished stays, and a broker that
		// keeps failing is not sent the whole mesh over and over.
		w.retryIn = min(max(2*w.retryIn, w.retry), MaxReconcileRetry)
		w.retryAt = time.Now().Add(w.retryIn)
		w.log.Warn("transport could not make its state equal to the mesh; trying again", "in", w.retryIn, "err", err)
		w.reconcile = reconcileStale
	}
	return true
}

// countRejected counts the ErrRejected errors joined in err.
func countRejected(err error) int {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range joined.Unwrap() {
			n += countRejected(e)
		}
		return n
	}
	if errors.Is(err, transports.ErrRejected) {
		return 1
	}
	return 0
}

// Metrics are the delivery metrics of every transport, labelled by transport.
type Metrics struct {
	delivered, rejected, failed, gaps, missed, reconciles *prometheus.CounterVec
	behind, lastSuccess                                   *prometheus.GaugeVec
	latency                                               *prometheus.HistogramVec
	connected                                             *connectedCollector
}

// connectedCollector reports, at each scrape, whether each connection-keeping transport's
// connection is up.
type connectedCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	up   map[string]func() bool
}

func (c *connectedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *connectedCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, up := range c.up {
		v := 0.0
		if up() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, name)
	}
}

// NewMetrics registers the delivery metrics with r.
func NewMetrics(r prometheus.Registerer) (*Metrics, error) {
	label := []string{"transport"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "broadcaster_transport_" + name, Help: help}, label)
	}
	m := &Metrics{
		delivered:  counter("delivered_total", "Changes the destination accepted."),
		rejected:   counter("rejected_total", "Changes the destination refused for good (consumers see a gap)."),
		failed:     counter("failed_total", "Changes lost to a transport failure (consumers see a gap)."),
		gaps:       counter("gaps_total", "Times the transport fell further behind than the change log holds (a declared gap)."),
		missed:     counter("missed_total", "Changes skipped in declared gaps."),
		reconciles: counter("reconciles_total", "Times a state-keeping destination was made equal to the mesh."),
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "broadcaster_transport_behind_changes",
			Help: "Changes in the log the destination has not been handed yet."}, label),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "broadcaster_transport_last_delivery_timestamp_seconds",
			Help: "When the destination last took a batch."}, label),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "broadcaster_transport_publish_seconds",
			Help:    "How long handing one batch to the destination took, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, label),
	}
	m.connected = &connectedCollector{up: map[string]func() bool{}, desc: prometheus.NewDesc("broadcaster_transport_connected",
		"1 while the transport's connection to its broker is up (MQTT, NATS).", label, nil)}
	for _, c := range []prometheus.Collector{m.delivered, m.rejected, m.failed, m.gaps, m.missed, m.reconciles, m.behind, m.lastSuccess, m.latency, m.connected} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("registering delivery metrics: %w", err)
		}
	}
	return m, nil
}

// transportMetrics are one transport's series (unregistered ones when there are no metrics).
type transportMetrics struct {
	delivered, rejected, failed, gaps, missed, reconciles prometheus.Counter
	behind, lastSuccess                                   prometheus.Gauge
	latency                                               prometheus.Observer
}

func (m *Metrics) of(name string) *transportMetrics {
	if m == nil {
		m, _ = NewMetrics(prometheus.NewRegistry()) // counted, never exported
	}
	return &transportMetrics{
		delivered: m.delivered.WithLabelValues(name), rejected: m.rejected.WithLabelValues(name),
		failed: m.failed.WithLabelValues(name), gaps: m.gaps.WithLabelValues(name),
		missed: m.missed.WithLabelValues(name), reconciles: m.reconciles.WithLabelValues(name),
		behind: m.behind.WithLabelValues(name), lastSuccess: m.lastSuccess.WithLabelValues(name),
		latency: m.latency.WithLabelValues(name),
	}
}

// Stats counts the changes delivered, skipped in declared gaps, and refused or lost.
func (w *Worker) Stats() (delivered, missed, lost uint64) {
	return w.delivered.Load(), w.missed.Load(), w.lost.Load()
}
