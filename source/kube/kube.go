package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/source"
)

type options struct {
	namespaces []string
	selector   string
	log        *slog.Logger
	metrics    prometheus.Registerer
}

// Option configures a Source.
type Option = option.Func[options]

// WithNamespaces restricts namespaced kinds to these namespaces (default all).
func WithNamespaces(namespaces ...string) Option {
	return func(o *options) error {
		for _, ns := range namespaces {
			if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
				return option.Invalid("namespaces", "%q: %s", ns, errs[0])
			}
		}
		o.namespaces = namespaces
		return nil
	}
}

// WithLabelSelector restricts Brokers, Triggers, EventTypes, Subscriptions, channels and
// sources. CRDs and the kinds objects reference are not filtered: they only describe the
// selected objects.
func WithLabelSelector(selector string) Option {
	return func(o *options) error {
		if _, err := labels.Parse(selector); err != nil {
			return option.Invalid("label selector", "%q: %v", selector, err)
		}
		o.selector = selector
		return nil
	}
}

// WithLogger receives the source's own lines and client-go's.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) (err error) { o.log, err = option.Logger(l); return err }
}

// WithMetrics registers the source's metrics.
func WithMetrics(r prometheus.Registerer) Option {
	return func(o *options) error {
		if _, err := option.Required("metrics", r); err != nil {
			return err
		}
		o.metrics = r
		return nil
	}
}

// Source watches a cluster. Create it with New; Run it once.
type Source struct {
	dynamic    dynamic.Interface
	mapper     apimeta.ResettableRESTMapper
	namespaces []string // [""] for all
	selector   string
	log        *slog.Logger
	degraded   *prometheus.GaugeVec

	listed  atomic.Bool    // the initial listing is sent; changes now go to the sink live
	running sync.WaitGroup // informer goroutines

	mu         sync.Mutex
	ctx        context.Context
	sink       source.Sink
	initial    map[engine.ObjectRef]*engine.Parsed // the initial listing, until live
	watches    map[engine.GroupKind]*kindWatch
	sent       map[engine.GroupKind]map[nsName]struct{} // what the sink holds, per kind
	crdsReady  bool                                     // the CRD informer has listed (or cannot)
	crds       map[string]crdInfo                       // by CRD name
	crdOfKind  map[engine.GroupKind]string
	references map[engine.ObjectRef][]engine.GroupKind // object → the undeclared kinds its edges name
	wanted     map[engine.GroupKind]int                // referenced kind → objects naming it
	unserved   map[engine.GroupKind]bool               // kinds wanted but not served by the cluster
	batch      changeBatch                             // live changes of the burst under way
	more       chan struct{}                           // a live change joined the batch
}

type nsName struct{ namespace, name string }

// The kinds the source watches and how, as the engine's declarations say (engine.Kinds).
var (
	gkCRD       = kindsFound(engine.FindDefinitions)[0]
	alwaysKinds = kindsFound(engine.FindAlways)
	crdResource = schema.GroupVersionResource{Group: gkCRD.Group, Version: "v1", Resource: "customresourcedefinitions"}
	roleLabels  = crdRoleLabels()
)

// kindsFound lists the declared kinds a source finds the way find says.
func kindsFound(find engine.Find) []engine.GroupKind {
	var out []engine.GroupKind
	for _, k := range engine.Kinds() {
		if k.Find == find && k.GroupKind != (engine.GroupKind{}) {
			out = append(out, k.GroupKind)
		}
	}
	return out
}

// crdRoleLabels are the CRD labels that make a kind a channel or a source: its objects are
// then watched whole.
func crdRoleLabels() []string {
	var out []string
	for _, k := range engine.Kinds() {
		if k.Find == engine.FindByCRDLabel {
			out = append(out, k.CRDLabel)
		}
	}
	return out
}

var _ source.Source = (*Source)(nil)

// New returns a source for the cluster cfg points at. It checks the options but does not
// contact the API server.
func New(cfg *rest.Config, opts ...Option) (*Source, error) {
	o := options{log: option.Discard()}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	namespaces := slices.Compact(slices.Sorted(slices.Values(o.namespaces)))
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	discoveryCfg := rest.CopyConfig(cfg)
	if discoveryCfg.Timeout == 0 {
		discoveryCfg.Timeout = 30 * time.Second // discovery is asked under the source's lock
	}
	disco, err := discovery.NewDiscoveryClientForConfig(discoveryCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	degraded := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "broadcaster_source_kind_degraded",
		Help: "1 while a kind cannot be watched (reason forbidden: RBAC; not_served: the API server does not serve it).",
	}, []string{"group", "kind", "reason"})
	if o.metrics != nil {
		if err := o.metrics.Register(degraded); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return &Source{
		dynamic:    dyn,
		mapper:     restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco)),
		namespaces: namespaces,
		selector:   o.selector,
		log:        o.log,
		degraded:   degraded,
		initial:    map[engine.ObjectRef]*engine.Parsed{},
		watches:    map[engine.GroupKind]*kindWatch{},
		sent:       map[engine.GroupKind]map[nsName]struct{}{},
		crds:       map[string]crdInfo{},
		crdOfKind:  map[engine.GroupKind]string{},
		references: map[engine.ObjectRef][]engine.GroupKind{},
		wanted:     map[engine.GroupKind]int{},
		unserved:   map[engine.GroupKind]bool{},
	}, nil
}

// Listed reports whether the initial listing of every watchable kind has been delivered.
func (s *Source) Listed() bool { return s.listed.Load() }

// Run watches until ctx ends. The initial listing goes to sink as one batch (Replace); later
// changes in bursts, each burst one batch.
func (s *Source) Run(ctx context.Context, sink source.Sink) error {
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(s.log.Handler()))
	s.mu.Lock()
	if s.sink != nil {
		s.mu.Unlock()
		return errors.New("kube source: Run called twice")
	}
	s.ctx, s.sink = ctx, sink
	s.more = make(chan struct{}, 1)
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		s.flushBursts(ctx)
	}()
	s.start(gkCRD, watchSpec{resource: crdResource})
	s.mu.Unlock()
	// Load discovery while the CRDs list, so resolving the first built-in subscriber kind
	// (core Services, usually) does not wait for it under the lock.
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		_, _ = s.mapper.RESTMappings(schema.GroupKind{Kind: "Service"})
	}()

	defer func() {
		s.mu.Lock()
		for gk, w := range s.watches {
			w.cancel()
			delete(s.watches, gk)
		}
		s.mu.Unlock()
		s.running.Wait()
	}()
	err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(context.Context) (bool, error) {
		return s.goLiveWhenListed(), nil
	})
	if err != nil {
		return ctx.Err()
	}
	<-ctx.Done()
	return ctx.Err()
}

// goLiveWhenListed hands the initial listing over once every kind has listed or is degraded.
func (s *Source) goLiveWhenListed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.crdsReady {
		if !s.watches[gkCRD].settled() {
			return false
		}
		// Channel, source and Knative kinds are read off the CRDs, so only now is it known
		// what to watch and at which version.
		s.crdsReady = true
		s.reconcile()
		return false
	}
	settled := true
	for _, w := range s.watches {
		if !w.listed && w.synced() {
			w.listed = true // progress of the initial listing, one line per kind
			s.log.Info("kind listed", "kind", kindName(w.gk), "objects", len(w.keys()), "resource", w.spec.resource.String())
		}
		settled = settled && w.settled()
	}
	if !settled {
		return false
	}
	objs := make([]*engine.Parsed, 0, len(s.initial))
	for _, p := range s.initial {
		objs = append(objs, p)
	}
	s.initial = nil
	s.sink.Apply(engine.ObjectBatch{Upserts: objs, Replace: true})
	s.listed.Store(true)
	s.log.Info("cluster listed", "objects", len(objs), "kinds", len(s.watches))
	return true
}

// deliver is every informer's handler. Events of a watch that has been stopped or replaced
// are dropped: its successor (or the stop itself) accounts for its objects.
func (s *Source) deliver(w *kindWatch, obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	var p *engine.Parsed
	var crd *unstructured.Unstructured
	switch o := obj.(type) {
	case *engine.Parsed:
		p = o
	case *unstructured.Unstructured: // a CRD: the source reads more of it than the mesh
		crd, p = o, engine.Parse(o)
	default:
		s.log.Error("kube source: object of unexpected type ignored", "kind", w.gk, "type", fmt.Sprintf("%T", obj))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watches[w.gk] != w {
		return
	}
	if deleted {
		s.send(w.gk, p.Ref(), nil)
	} else {
		s.send(w.gk, p.Ref(), p)
	}
	if w.gk == gkCRD {
		s.noteCRD(crd, deleted)
	} else {
		s.noteReferences(p, deleted)
	}
}

// send passes one object change on (p nil: ref is deleted) and records what the sink holds.
func (s *Source) send(gk engine.GroupKind, ref engine.ObjectRef, p *engine.Parsed) {
	deleted := p == nil
	key := nsName{ref.Namespace, ref.Name}
	held := s.sent[gk]
	if deleted {
		if _, ok := held[key]; !ok {
			return // never sent (or already deleted): nothing to undo
		}
		delete(held, key)
	} else {
		if held == nil {
			held = map[nsName]struct{}{}
			s.sent[gk] = held
		}
		held[key] = struct{}{}
	}
	if !s.listed.Load() {
		if deleted {
			delete(s.initial, ref)
		} else {
			s.initial[ref] = p
		}
		return
	}
	s.batch.put(ref, p) // the burst goes over as one batch
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// retract deletes every object of gk the sink holds that keep lacks (nil: all of them).
func (s *Source) retract(gk engine.GroupKind, keep map[nsName]struct{}) {
	for key := range s.sent[gk] {
		if _, ok := keep[key]; ok {
			continue
		}
		s.send(gk, engine.ObjectRef{Group: gk.Group, Kind: gk.Kind, Namespace: key.namespace, Name: key.name}, nil)
	}
}

// noteReferences counts the undeclared kinds objects' edges name (subscribers, sinks,
// dead-letter sinks): those kinds are watched while named.
func (s *Source) noteReferences(p *engine.Parsed, deleted bool) {
	ref := p.Ref()
	old := s.references[ref]
	var now []engine.GroupKind
	if !deleted {
		now = p.ReferencedKinds()
	}
	if slices.Equal(old, now) {
		return
	}
	changed := false
	for _, gk := range old {
		if s.wanted[gk]--; s.wanted[gk] == 0 {
			delete(s.wanted, gk)
			changed = true
		}
	}
	for _, gk := range now {
		if s.wanted[gk]++; s.wanted[gk] == 1 {
			changed = true
		}
	}
	if len(now) == 0 {
		delete(s.references, ref)
	} else {
		s.references[ref] = now
	}
	if changed && s.crdsReady {
		s.reconcile()
	}
}

// noteCRD keeps what each CRD says about its kind, and rewatches when that changes.
func (s *Source) noteCRD(u *unstructured.Unstructured, deleted bool) {
	name := u.GetName()
	old, had := s.crds[name]
	var now crdInfo
	if !deleted {
		now = parseCRD(u)
	}
	if had && !deleted && old == now {
		return // a status or unrelated change
	}
	if had {
		delete(s.crds, name)
		if s.crdOfKind[old.gk] == name {
			delete(s.crdOfKind, old.gk)
		}
	}
	if !deleted && now.gk.Kind != "" {
		s.crds[name] = now
		s.crdOfKind[now.gk] = name
	}
	if len(s.unserved) > 0 {
		s.mapper.Reset() // a kind wanted but missing may be served now
	}
	if s.crdsReady {
		s.reconcile()
	}
}

// reconcile starts, swaps and stops informers so exactly the wanted kinds are watched, each
// the way it is wanted.
func (s *Source) reconcile() {
	want := map[engine.GroupKind]watchSpec{gkCRD: s.watches[gkCRD].spec}
	unserved := map[engine.GroupKind]bool{}
	for _, gk := range alwaysKinds {
		if spec, ok := s.resolve(gk, false); ok {
			want[gk] = spec
		} else {
			unserved[gk] = true
		}
	}
	for _, c := range s.crds {
		if c.roleLabelled && c.namespaced {
			if _, base := want[c.gk]; !base {
				want[c.gk] = watchSpec{resource: c.resource, namespaced: true, selector: s.selector}
			}
		}
	}
	for gk := range s.wanted {
		if _, full := want[gk]; full || slices.Contains(alwaysKinds, gk) {
			continue
		}
		if spec, ok := s.resolve(gk, true); ok {
			want[gk] = spec
		} else {
			unserved[gk] = true
		}
	}
	for gk, w := range s.watches {
		if _, ok := want[gk]; !ok {
			s.stop(gk, w)
		}
	}
	for gk, spec := range want {
		if w, ok := s.watches[gk]; !ok || w.spec != spec {
			s.start(gk, spec)
		}
	}
	for gk := range s.unserved {
		if !unserved[gk] {
			s.degraded.DeleteLabelValues(gk.Group, gk.Kind, reasonNotServed)
		}
	}
	for gk := range unserved {
		if !s.unserved[gk] {
			s.log.Warn("kind not served by the API server; the mesh lacks it until it is", "kind", kindName(gk))
			s.degraded.WithLabelValues(gk.Group, gk.Kind, reasonNotServed).Set(1)
		}
	}
	s.unserved = unserved
}

// resolve finds how to watch gk: from its CRD when there is one (no discovery lag), else
// through discovery. Referenced kinds are watched whole and unfiltered: the mesh needs to know
// of every such object whether it exists and where it receives events (status.address); the
// source keeps each in the engine's parsed form only (metadata, readiness, address, edges).
func (s *Source) resolve(gk engine.GroupKind, referenced bool) (watchSpec, bool) {
	spec := watchSpec{selector: s.selector}
	if referenced {
		spec = watchSpec{}
	}
	if name, ok := s.crdOfKind[gk]; ok {
		c := s.crds[name]
		spec.resource, spec.namespaced = c.resource, c.namespaced
		return spec, c.namespaced // cluster-scoped objects never join the mesh
	}
	mappings, err := s.mapper.RESTMappings(schema.GroupKind{Group: gk.Group, Kind: gk.Kind})
	if err != nil || len(mappings) == 0 {
		return watchSpec{}, false
	}
	best := mappings[0]
	for _, m := range mappings[1:] {
		if version.CompareKubeAwareVersionStrings(m.Resource.Version, best.Resource.Version) > 0 {
			best = m
		}
	}
	spec.resource = best.Resource
	spec.namespaced = best.Scope.Name() == apimeta.RESTScopeNameNamespace
	return spec, spec.namespaced
}

// start watches gk as spec says, replacing any current watch of gk. Once the new watch has
// listed, objects its predecessor sent that it lacks are deleted.
func (s *Source) start(gk engine.GroupKind, spec watchSpec) {
	if old, ok := s.watches[gk]; ok {
		old.cancel()
		s.clearDegraded(old)
	}
	w := s.newWatch(gk, spec)
	s.watches[gk] = w
	if len(s.sent[gk]) == 0 {
		return
	}
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		if !cache.WaitForCacheSync(w.ctx.Done(), w.synced) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.watches[gk] == w {
			s.retract(gk, w.keys())
		}
	}()
}

// stop ends the watch of gk and deletes everything it sent.
func (s *Source) stop(gk engine.GroupKind, w *kindWatch) {
	w.cancel()
	s.clearDegraded(w)
	delete(s.watches, gk)
	s.retract(gk, nil)
}

func (s *Source) clearDegraded(w *kindWatch) {
	if w.forbidden.Load() {
		s.degraded.DeleteLabelValues(w.gk.Group, w.gk.Kind, reasonForbidden)
	}
	if w.missing.Load() && !s.unserved[w.gk] {
		s.degraded.DeleteLabelValues(w.gk.Group, w.gk.Kind, reasonNotServed)
	}
}

func kindName(gk engine.GroupKind) string {
	if gk.Group == "" {
		return gk.Kind
	}
	return gk.Kind + "." + gk.Group
}
