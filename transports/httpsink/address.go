package httpsink

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"knative.dev/pkg/network"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
)

// Address is where a sink receives events, as a Knative Addressable says it: the URL, the
// PEM CA certificates its certificate chains to (CACerts), and the audience of the tokens it
// accepts.
type Address struct {
	URL      string
	CACerts  string
	Audience string
}

// Addresses give a sink's address as it is now.
type Addresses interface {
	// Address is the current address, or why there is none (yet); an error is transient.
	Address() (Address, error)
	// Name names the sink in logs: its URL without credentials, or the object it follows.
	Name() string
}

// staticAddress is a URL given once.
type staticAddress struct{ a Address }

func (s staticAddress) Address() (Address, error) { return s.a, nil }
func (s staticAddress) Name() string              { return option.RedactURL(s.a.URL) }

// Reference is a Kubernetes object a sink sends to, in the mesh's key form:
// GROUP/Kind/NAMESPACE/NAME ("eventing.knative.dev/Broker/shop/default"; a core Service:
// "/Service/shop/display").
type Reference struct{ Group, Kind, Namespace, Name string }

func (r Reference) String() string { return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name }

// ParseReference reads GROUP/Kind/NAMESPACE/NAME.
func ParseReference(s string) (Reference, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 4 || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return Reference{}, option.Invalid("sink reference "+s, "want GROUP/Kind/NAMESPACE/NAME, e.g. eventing.knative.dev/Broker/shop/default (a core Service: /Service/shop/display)")
	}
	return Reference{Group: parts[0], Kind: parts[1], Namespace: parts[2], Name: parts[3]}, nil
}

// Resolve is the address of obj as Knative resolves a Destination to it: a core Service is
// http://NAME.NAMESPACE.svc.<cluster domain> (the domain read from /etc/resolv.conf as
// Knative reads it, cluster.local without one; https when caCerts, the destination's, are
// given); any other kind is Addressable, and its address is the first of status.addresses, or
// status.address. A destination's caCerts and audience, when given, win over the address's.
func Resolve(ref Reference, obj *unstructured.Unstructured, caCerts, audience string) (Address, error) {
	if ref.Group == "" && ref.Kind == "Service" {
		scheme := "http"
		if caCerts != "" {
			scheme = "https"
		}
		return Address{URL: scheme + "://" + network.GetServiceHostname(ref.Name, ref.Namespace), CACerts: caCerts, Audience: audience}, nil
	}
	var addr map[string]any
	if list, _, _ := unstructured.NestedSlice(obj.Object, "status", "addresses"); len(list) > 0 {
		addr, _ = list[0].(map[string]any)
	} else {
		addr, _, _ = unstructured.NestedMap(obj.Object, "status", "address")
	}
	if addr == nil {
		return Address{}, fmt.Errorf("%s has no address yet (status.address)", ref)
	}
	raw, _ := addr["url"].(string)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Address{}, fmt.Errorf("%s: status.address.url %q is not an absolute http(s) URL", ref, raw)
	}
	a := Address{URL: raw}
	a.CACerts, _ = addr["CACerts"].(string)
	a.Audience, _ = addr["audience"].(string)
	if caCerts != "" {
		a.CACerts = caCerts
	}
	if audience != "" {
		a.Audience = audience
	}
	return a, nil
}

// Follower is the address of a referenced object, kept up to date: it reads the object once,
// then watches that object alone (a get and a watch on its name; nothing else of its kind),
// reading it again when the watch ends.
type Follower struct {
	ref               Reference
	caCerts, audience string // the destination's own, winning over the address's
	client            dynamic.ResourceInterface
	log               *slog.Logger

	mu   sync.Mutex
	addr Address
	err  error
	seen chan struct{} // closed once the first reading is in

	stop context.CancelFunc
	done chan struct{}
}

var _ Addresses = (*Follower)(nil)

// Follow starts following ref through cfg's cluster: until Close, the address is the
// object's latest. caCerts and audience, when given, win over the object's (a Knative
// Destination's own).
func Follow(cfg *rest.Config, ref Reference, caCerts, audience string, log *slog.Logger) (*Follower, error) {
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("sink reference %s: %w", ref, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("sink reference %s: %w", ref, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	f := &Follower{ref: ref, caCerts: caCerts, audience: audience, log: log, seen: make(chan struct{}),
		err: fmt.Errorf("%s: not read yet", ref), stop: stop, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.run(ctx, restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco)), dyn)
	}()
	return f, nil
}

// Address is the object's address as last read.
func (f *Follower) Address() (Address, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addr, f.err
}

// Name names the object.
func (f *Follower) Name() string { return f.ref.String() }

// Ready is closed once the object has been read (or found missing) once.
func (f *Follower) Ready() <-chan struct{} { return f.seen }

// Close stops following.
func (f *Follower) Close() {
	f.stop()
	<-f.done
}

func (f *Follower) run(ctx context.Context, mapper *restmapper.DeferredDiscoveryRESTMapper, dyn dynamic.Interface) {
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		if f.client == nil {
			mapping, err := mapper.RESTMapping(schema.GroupKind{Group: f.ref.Group, Kind: f.ref.Kind})
			if err != nil {
				mapper.Reset()
				f.set(Address{}, fmt.Errorf("%s: kind not served: %w", f.ref, err))
			} else {
				f.client = dyn.Resource(mapping.Resource).Namespace(f.ref.Namespace)
			}
		}
		if f.client != nil && f.follow(ctx) {
			wait = 100 * time.Millisecond // the watch ran: start over at once
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// follow reads the object and watches it until the watch ends; it reports whether the
// watch was opened.
func (f *Follower) follow(ctx context.Context) bool {
	obj, err := f.client.Get(ctx, f.ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err): // watched below: its creation is an Added event
		f.set(Address{}, fmt.Errorf("sink reference: %s does not exist", f.ref))
		obj = nil
	case err != nil:
		if ctx.Err() == nil {
			f.set(Address{}, fmt.Errorf("sink reference %s: %w", f.ref, err))
		}
		return false
	default:
		f.update(obj)
	}
	rv := ""
	if obj != nil {
		rv = obj.GetResourceVersion()
	}
	w, err := f.client.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", f.ref.Name).String(),
		ResourceVersion: rv, AllowWatchBookmarks: true})
	if err != nil {
		return false
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case ev, ok := <-w.ResultChan():
			if !ok {
				return true
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if o, ok := ev.Object.(*unstructured.Unstructured); ok {
					f.update(o)
				}
			case watch.Deleted:
				f.set(Address{}, fmt.Errorf("sink reference: %s was deleted", f.ref))
			case watch.Error:
				return true
			}
		}
	}
}

func (f *Follower) update(obj *unstructured.Unstructured) {
	a, err := Resolve(f.ref, obj, f.caCerts, f.audience)
	f.set(a, err)
}

func (f *Follower) set(a Address, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.seen:
	default:
		close(f.seen)
	}
	if a == f.addr && ((err == nil && f.err == nil) || (err != nil && f.err != nil && err.Error() == f.err.Error())) {
		return // unchanged
	}
	switch {
	case err != nil:
		f.log.Warn("sink reference has no usable address; holding events until it has", "ref", f.ref.String(), "err", err)
	default:
		f.log.Info("sink address", "ref", f.ref.String(), "url", option.RedactURL(a.URL), "audience", a.Audience,
			"caCerts", a.CACerts != "")
	}
	f.addr, f.err = a, err
}
