package ha

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Replica is the mesh a replica serves, as high availability moves it between following and
// leading (as knative/pkg's LeaderAware is promoted and demoted, it knows nothing of leases):
// mesh/hub.Hub implements it.
type Replica interface {
	// Mirror is what following the leader keeps up to date.
	Mirror
	// Lead makes the replica number its own changes: it continues the sequence space it
	// served, skipping skip numbers first, or opens epoch with its whole mesh when it holds no
	// space to continue. from is where the served space was before the term's first change
	// (after the skip; zero when an epoch opens).
	Lead(epoch string, skip uint64) (from mesh.Position, continued bool)
	// Follow makes the replica serve what Mirror brings from the leader, and keep its own
	// changes to itself; until the leader's stream says otherwise it serves what it published.
	Follow()
}

// Term is how a term as leader began, so that what publishes knows where to start. The zero
// Term is the first epoch of a replica that leads without an election.
type Term struct {
	// Continued: the term carries on a sequence space instead of opening an epoch. From is
	// where that space stood before the term's first change.
	Continued bool
	From      mesh.Position
	// HandedOver: the previous leader said where it stopped, and this replica held all of it.
	// Otherwise it may have published changes this replica never saw, and the term skipped
	// crashSkip numbers after them.
	HandedOver bool
}

// ErrLeadershipLost is the cause of a term's context when the lease was lost (not when the
// process stops): what the term still holds undelivered is the next leader's to deliver.
var ErrLeadershipLost = errors.New("lost the lease")

// On taking over, a new leader waits this long for its predecessor's last words (the shutdown
// event of a clean handover) if it has not heard them yet.
const handoverGrace = 500 * time.Millisecond

// crashSkip is how many numbers a new leader skips when its predecessor did not hand over:
// more than that one can have published unseen, so consumers see a gap (and heal it with a
// snapshot) instead of two changes under one number.
const crashSkip = 1 << 20

// Defaults of the election (client-go's meanings; see New).
const (
	DefaultLeaseName     = "event-mesh-broadcaster"
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 500 * time.Millisecond
)

type options struct {
	namespace, name     string
	lease, renew, retry time.Duration
	canLead             func() bool
	newEpoch            func() string
	client              *http.Client
	token               func() (string, error)
	log                 *slog.Logger
	metrics             *followMetrics
}

// Option configures high availability.
type Option = option.Func[options]

// WithLease names the Lease the replicas campaign for.
func WithLease(namespace, name string) Option {
	return func(o *options) error {
		if namespace == "" || name == "" {
			return option.Invalid("lease", "%q/%q: want a namespace and a name", namespace, name)
		}
		o.namespace, o.name = namespace, name
		return nil
	}
}

// WithTimings tunes the election, with client-go's meanings: a lease lasts lease, its holder
// gives it up when it could not renew it within renew, and the candidates retry every retry.
func WithTimings(lease, renew, retry time.Duration) Option {
	return func(o *options) error {
		if !(lease > renew && renew > retry && retry > 0) {
			return option.Invalid("lease timings", "%v, %v, %v: want lease duration > renew deadline > retry period > 0",
				lease, renew, retry)
		}
		o.lease, o.renew, o.retry = lease, renew, retry
		return nil
	}
}

// WithCanLead makes the replica campaign only once canLead holds (the source's initial listing
// is in its mesh: only a replica holding the whole mesh may lead).
func WithCanLead(canLead func() bool) Option {
	return func(o *options) (err error) { o.canLead, err = option.Required("can lead", canLead); return err }
}

// WithNewEpoch names the epoch a leader opens when it holds no sequence space to continue.
func WithNewEpoch(newEpoch func() string) Option {
	return func(o *options) (err error) { o.newEpoch, err = option.Required("new epoch", newEpoch); return err }
}

// WithClient makes the requests to the leader with c (TLS settings); it must have no overall
// timeout, since the leader's watch stream lasts.
func WithClient(c *http.Client) Option {
	return func(o *options) (err error) { o.client, err = option.Required("http client", c); return err }
}

// WithToken presents the bearer token token returns to the leader (read again at each
// connection: projected ServiceAccount tokens rotate).
func WithToken(token func() (string, error)) Option {
	return func(o *options) (err error) { o.token, err = option.Required("token", token); return err }
}

// WithLogger logs the terms, the leader followed, snapshots loaded and broken streams.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) (err error) { o.log, err = option.Logger(l); return err }
}

// WithMetrics registers broadcaster_follow_streaming (1 while the leader's stream flows),
// broadcaster_follow_snapshots_total and broadcaster_follow_changes_total (what was loaded
// and replicated).
func WithMetrics(r prometheus.Registerer) Option {
	return func(o *options) error {
		if _, err := option.Required("metrics", r); err != nil {
			return err
		}
		m, err := newFollowMetrics(r)
		o.metrics = m
		return err
	}
}

// HA is one replica's part in high availability: it follows the leader while another replica
// leads, campaigns for the Lease, and hands its Replica over between following and leading.
type HA struct {
	replica  Replica
	newEpoch func() string
	log      *slog.Logger
	elector  *elector
	follower *follower
}

// New returns the high availability of replica, campaigning with client for the Lease, which
// carries url (where this replica serves its endpoints) while it leads. It makes replica
// follow: until elected it serves the leader's sequence space. Defaults: the Lease
// default/DefaultLeaseName, DefaultLeaseDuration, DefaultRenewDeadline, DefaultRetryPeriod,
// campaigning at once, random epoch names, an http.Client without timeout, no token, no
// logging, no metrics.
func New(replica Replica, client kubernetes.Interface, url string, opts ...Option) (*HA, error) {
	o, err := newOptions(opts...)
	if err != nil {
		return nil, err
	}
	if replica == nil || client == nil || url == "" {
		return nil, option.Invalid("ha", "a replica, a Kubernetes client and this replica's URL are required")
	}
	if token, _ := o.token(); token == "" {
		o.log.Warn("the cluster credentials hold no bearer token: this replica cannot present one to the leader, " +
			"so while it follows it serves nothing (run with a ServiceAccount, or a kubeconfig with a token)")
	}
	h := &HA{replica: replica, newEpoch: o.newEpoch, log: o.log, follower: newFollower(replica, o)}
	h.elector = &elector{client: client, namespace: o.namespace, name: o.name, lease: o.lease, renew: o.renew,
		retry: o.retry, canLead: o.canLead, url: url, leader: h.follower.setLeader, log: o.log}
	replica.Follow()
	return h, nil
}

// Run follows the leader and campaigns until ctx ends. Each time this replica is elected, it
// takes over (see the package doc), calls lead with a context that ends when the lease is lost
// (cause ErrLeadershipLost) or ctx ends, and when lead has returned follows again. lead giving
// up (returning early) gives the lease up. Run returns an error only when the election could
// not start.
func (h *HA) Run(ctx context.Context, lead func(ctx context.Context, term Term)) error {
	ctx, cancel := context.WithCancel(ctx)
	following := make(chan struct{})
	go func() {
		defer close(following)
		h.follower.run(ctx)
	}()
	defer func() {
		cancel()
		<-following
	}()
	return h.elector.run(ctx, func(termCtx context.Context) {
		term := h.takeOver()
		defer func() {
			h.replica.Follow()
			h.follower.resume()
		}()
		lead(termCtx, term)
	})
}

// takeOver makes the replica lead: it continues the sequence space it followed (after a gap
// when the previous leader did not hand over), or opens a new epoch when it holds none.
func (h *HA) takeOver() Term {
	clean := h.follower.pause(handoverGrace)
	skip := uint64(0)
	if !clean {
		skip = crashSkip
	}
	before := h.replica.Position()
	from, continued := h.replica.Lead(h.newEpoch(), skip)
	after := h.replica.Position()
	if !continued {
		// The epoch opened with the whole mesh, one added change per entity from 1.
		h.log.Info("leading: no replica holds a sequence space; publishing the mesh as a new epoch",
			"epoch", after.Epoch, "entities", after.Sequence)
		return Term{}
	}
	if clean {
		h.log.Info("leading: continuing the sequence space after a clean handover", "epoch", after.Epoch,
			"from", before.Sequence, "changes", after.Sequence-from.Sequence)
	} else {
		h.log.Warn("leading: the previous leader did not hand over; continuing its sequence space after a gap "+
			"(consumers heal it with a snapshot)", "epoch", after.Epoch, "held", before.Sequence, "from", from.Sequence,
			"changes", after.Sequence-from.Sequence)
	}
	return Term{Continued: true, From: from, HandedOver: clean}
}

// newOptions applies opts over the defaults New lists.
func newOptions(opts ...Option) (options, error) {
	o := options{namespace: "default", name: DefaultLeaseName, lease: DefaultLeaseDuration, renew: DefaultRenewDeadline,
		retry: DefaultRetryPeriod, canLead: func() bool { return true }, newEpoch: randomEpoch, client: &http.Client{},
		token: func() (string, error) { return "", nil }, log: option.Discard()}
	return o, option.Apply(&o, opts...)
}

// randomEpoch names a new sequence space: nothing is persisted, so every term that opens one
// opens a new epoch.
func randomEpoch() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}
