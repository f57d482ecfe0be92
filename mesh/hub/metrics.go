package hub

import (
	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// hubMetrics count what goes into the mesh.
type hubMetrics struct {
	objects  *prometheus.CounterVec // object changes applied, by kind
	problems prometheus.Counter     // objects the engine had to ignore parts of

	kinds kindLabels
}

// MaxKindLabels bounds the kinds broadcaster_object_changes_total names beside the declared
// ones (Broker, Trigger, ...): the first kinds seen (channel, source and subscriber kinds,
// which users define), the rest counted under OtherKind. Kinds are users' input: unbounded,
// a scrape would grow with every kind anyone invents.
const MaxKindLabels = 64

// OtherKind is the label of the kinds beyond MaxKindLabels, and of kinds that are not a
// plain name (a kind with characters a Kubernetes kind cannot hold).
const OtherKind = "other"

// kindLabels picks the label of a kind; it is used under the hub's lock.
type kindLabels struct {
	seen map[string]bool // the undeclared kinds given their own label
}

func (k *kindLabels) of(r engine.ObjectRef) string {
	kind := r.Kind
	if r.Group != "" {
		kind += "." + r.Group
	}
	if _, declared := engine.KindOf(engine.GroupKind{Group: r.Group, Kind: r.Kind}); declared || k.seen[kind] {
		return kind
	}
	if len(k.seen) >= MaxKindLabels || !plainKind(kind) {
		return OtherKind
	}
	if k.seen == nil {
		k.seen = map[string]bool{}
	}
	k.seen[kind] = true
	return kind
}

// plainKind reports whether kind is Kind.group as Kubernetes spells them: letters, digits,
// dots and dashes, at most 316 bytes (a DNS-1035 label and a DNS-1123 subdomain).
func plainKind(kind string) bool {
	if kind == "" || len(kind) > 63+1+253 {
		return false
	}
	for i := 0; i < len(kind); i++ {
		c := kind[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// WithMetrics registers the mesh's metrics with reg: broadcaster_object_changes_total{kind}
// (objects in; the declared kinds and at most MaxKindLabels others, the rest as OtherKind), broadcaster_object_problems_total, and, read from the served mesh when
// scraped, broadcaster_mesh_entities{kind}, broadcaster_mesh_sequence and
// broadcaster_mesh_epoch_info{epoch}. Entity changes out are counted by CountChanges.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(o *options) (err error) { o.metrics, err = option.Required("metrics registerer", reg); return err }
}

func (h *Hub) registerMetrics(reg prometheus.Registerer) error {
	m := &hubMetrics{
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "broadcaster_object_changes_total",
			Help: "Object changes applied to the mesh (adds, updates, deletes, and each object of a listing), by kind."}, []string{"kind"}),
		problems: prometheus.NewCounter(prometheus.CounterOpts{Name: "broadcaster_object_problems_total",
			Help: "Objects applied with parts the mesh had to ignore (an invalid filter, a malformed annotation): see the log."}),
	}
	for _, c := range []prometheus.Collector{m.objects, m.problems, meshCollector{h}} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	h.metrics = m
	return nil
}

// countObjects counts object changes in, by kind ("Trigger.eventing.knative.dev").
func (h *Hub) countObjects(refs ...engine.ObjectRef) {
	if h.metrics == nil {
		return
	}
	for _, r := range refs {
		h.metrics.objects.WithLabelValues(h.metrics.kinds.of(r)).Inc()
	}
}

func (h *Hub) countProblems(problems error) {
	if h.metrics == nil || problems == nil {
		return
	}
	n := 1
	if joined, ok := problems.(interface{ Unwrap() []error }); ok {
		n = len(joined.Unwrap())
	}
	h.metrics.problems.Add(float64(n))
}

var (
	entitiesDesc = prometheus.NewDesc("broadcaster_mesh_entities", "Entities in the mesh served, by kind.", []string{"kind"}, nil)
	sequenceDesc = prometheus.NewDesc("broadcaster_mesh_sequence", "The sequence number (meshseq) of the mesh served.", nil, nil)
	epochDesc    = prometheus.NewDesc("broadcaster_mesh_epoch_info", "The epoch of the mesh served (value 1).", []string{"epoch"}, nil)
)

// meshCollector reads the served mesh when scraped.
type meshCollector struct{ h *Hub }

func (c meshCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- entitiesDesc
	ch <- sequenceDesc
	ch <- epochDesc
}

func (c meshCollector) Collect(ch chan<- prometheus.Metric) {
	c.h.mu.Lock()
	snap := c.h.served()
	c.h.mu.Unlock()
	counts := map[mesh.EntityKind]int{}
	snap.Each(func(e engine.Entity) bool {
		counts[e.Kind]++
		return true
	})
	for _, k := range mesh.EntityKinds() {
		ch <- prometheus.MustNewConstMetric(entitiesDesc, prometheus.GaugeValue, float64(counts[k]), k.String())
	}
	pos := snap.Position()
	ch <- prometheus.MustNewConstMetric(sequenceDesc, prometheus.GaugeValue, float64(pos.Sequence))
	if pos.Epoch != "" {
		ch <- prometheus.MustNewConstMetric(epochDesc, prometheus.GaugeValue, 1, pos.Epoch)
	}
}

// CountChanges is a listener that counts the entity changes the hub emits, by kind and op, in
// broadcaster_entity_changes_total (registered with reg).
func CountChanges(reg prometheus.Registerer) (Listener, error) {
	changes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "broadcaster_entity_changes_total",
		Help: "Entity changes emitted (what the transports and watchers are given), by kind and op."}, []string{"kind", "op"})
	if err := reg.Register(changes); err != nil {
		return nil, err
	}
	return func(b mesh.Batch) {
		for _, c := range b.Changes {
			changes.WithLabelValues(c.Kind.String(), c.Op.String()).Inc()
		}
	}, nil
}
