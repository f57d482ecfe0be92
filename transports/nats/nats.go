package nats

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
)

// Defaults.
const (
	DefaultSubjectPrefix = "knative.eventmesh"
)

type options struct {
	coreOnly       bool
	subjectPrefix  string
	stream, bucket string
	maxAge         time.Duration
	credsFile      string
	user, password string
	token          string
	tls            *tls.Config
	latest         func() []mesh.Change
	log            *slog.Logger
	domain         string               // the JetStream domain; "": the server's own
	replicas       int                  // of the stream and the bucket
	placement      *jetstream.Placement // of the stream and the bucket; nil: the server's choice
}

// Option configures a Publisher.
type Option = option.Func[options]

// DefaultMaxAge is how long the stream keeps events.
const DefaultMaxAge = 24 * time.Hour

// WithCoreOnly publishes plain NATS messages: no stream, no KV bucket.
func WithCoreOnly() Option { return func(o *options) error { o.coreOnly = true; return nil } }

// WithSubjectPrefix puts the entities' subjects under prefix.
func WithSubjectPrefix(prefix string) Option {
	return func(o *options) error {
		if prefix == "" || strings.ContainsAny(prefix, "*> \t") || strings.HasPrefix(prefix, ".") || strings.HasSuffix(prefix, ".") {
			return option.Invalid("nats subject prefix", "%q: want dot-separated tokens without wildcards", prefix)
		}
		o.subjectPrefix = prefix
		return nil
	}
}

// WithStream names the JetStream stream.
func WithStream(name string) Option {
	return func(o *options) error {
		if name == "" || strings.ContainsAny(name, ".*> \t/\\") {
			return option.Invalid("nats stream", "%q: want a name without dots, wildcards, spaces or slashes", name)
		}
		o.stream = name
		return nil
	}
}

// WithBucket names the KV bucket.
func WithBucket(name string) Option {
	return func(o *options) error {
		if !validBucket(name) {
			return option.Invalid("nats kv bucket", "%q: want letters, digits, - and _", name)
		}
		o.bucket = name
		return nil
	}
}

func validBucket(name string) bool {
	for _, c := range name {
		if !(c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return name != ""
}

// WithMaxAge sets how long the stream keeps events.
func WithMaxAge(d time.Duration) Option {
	return func(o *options) (err error) { o.maxAge, err = option.PositiveDuration("nats max age", d); return err }
}

// MaxReplicas is the most replicas JetStream keeps of a stream.
const MaxReplicas = 5

// WithReplicas keeps n copies of the stream and the KV bucket, each on its own server of a
// JetStream cluster (1 to MaxReplicas; more than 1 needs a cluster of at least n servers).
func WithReplicas(n int) Option {
	return func(o *options) error {
		if n < 1 || n > MaxReplicas {
			return option.Invalid("nats replicas", "%d: want 1 to %d", n, MaxReplicas)
		}
		o.replicas = n
		return nil
	}
}

// WithPlacement places the stream and the KV bucket in the JetStream cluster named cluster
// (empty: any) on servers carrying every one of tags (none: any).
func WithPlacement(cluster string, tags []string) Option {
	return func(o *options) error {
		if cluster == "" && len(tags) == 0 {
			return option.Invalid("nats placement", "name a cluster or tags")
		}
		if strings.ContainsAny(cluster, " \t.*>") {
			return option.Invalid("nats placement cluster", "%q: want a cluster name without spaces, dots or wildcards", cluster)
		}
		for _, t := range tags {
			if t == "" || strings.ContainsAny(t, " \t") {
				return option.Invalid("nats placement tags", "%q: want tags without spaces", t)
			}
		}
		o.placement = &jetstream.Placement{Cluster: cluster, Tags: slices.Clone(tags)}
		return nil
	}
}

// WithDomain sets the stream and the bucket up in the JetStream domain named domain: that of
// the hub cluster a leaf node joins, when the leaf node has a JetStream of its own or the hub
// is reached across domains.
func WithDomain(domain string) Option {
	return func(o *options) error {
		if domain == "" || strings.ContainsAny(domain, " \t.*>") {
			return option.Invalid("nats domain", "%q: want a JetStream domain name without spaces, dots or wildcards", domain)
		}
		o.domain = domain
		return nil
	}
}

// WithCredsFile logs in with a NATS credentials file (JWT and NKey seed).
func WithCredsFile(path string) Option {
	return func(o *options) error {
		if _, err := os.Stat(path); err != nil {
			return option.Invalid("nats creds", "%v", err)
		}
		o.credsFile = path
		return nil
	}
}

// WithUserInfo logs in with a user name and password.
func WithUserInfo(user, password string) Option {
	return func(o *options) error {
		if user == "" || password == "" {
			return option.Invalid("nats user", "want both a user name and a password")
		}
		o.user, o.password = user, password
		return nil
	}
}

// WithToken logs in with an authentication token.
func WithToken(token string) Option {
	return func(o *options) (err error) { o.token, err = option.NotEmpty("nats token", token); return err }
}

// WithTLS sets the client TLS configuration (for tls:// URLs, or servers that require TLS).
func WithTLS(c *tls.Config) Option {
	return func(o *options) (err error) { o.tls, err = option.Required("nats tls", c); return err }
}

// WithLatest gives the latest change of every entity (mesh/hub's snapshot); with it,
// Reconcile deletes the KV entries of entities that no longer exist.
func WithLatest(latest func() []mesh.Change) Option {
	return func(o *options) (err error) { o.latest, err = option.Required("latest", latest); return err }
}

// WithLogger logs connections, retries and reconciling.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) (err error) { o.log, err = option.Logger(l); return err }
}

// Publisher publishes to one NATS server or cluster.
type Publisher struct {
	mu        sync.Mutex // Publish, Reconcile and restoring never interleave
	opts      options
	setUp     bool // the stream and bucket were set up (the server may have been away at Dial)
	restoring bool // restoreIfLost is running
	reconnect chan struct{}
	cancel    context.CancelFunc
	done      sync.WaitGroup
	nc        *nats.Conn
	js        jetstream.JetStream
	kv        jetstream.KeyValue
	latest    func() []mesh.Change
	bucket    string
	prefix    string
	cluster   string // the encoder's: its token follows the prefix in subjects and starts KV keys
	enc       *codec.Encoder
	log       *slog.Logger
}

var _ transports.Reconciler = (*Publisher)(nil)

// Dial connects to url (nats://host:4222 or tls://; user:password@ or a token in the URL
// work; several servers of a cluster comma-separated, as nats.go takes them), reconnecting
// forever afterwards, and unless WithCoreOnly creates or updates the stream
// and the KV bucket within ctx. The Publisher owns the connection.
// Defaults: DefaultSubjectPrefix, the stream StreamName(prefix) and the bucket
// BucketName(prefix), DefaultMaxAge, one replica placed where the server chooses, no logging.
func Dial(ctx context.Context, url string, enc *codec.Encoder, opts ...Option) (*Publisher, error) {
	o, err := prepare(url, opts)
	if err != nil {
		return nil, err
	}
	p := &Publisher{prefix: o.subjectPrefix, cluster: enc.Cluster(), enc: enc, latest: o.latest, log: o.log.With("transport", "nats"), opts: o,
		reconnect: make(chan struct{}, 1)}
	natsOpts := []nats.Option{
		nats.Name("event-mesh-broadcaster"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		// Nothing is buffered while the server is away: a publish then fails at once and is
		// retried in order, instead of being sent later, possibly after a retry of an earlier one.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { p.log.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(c *nats.Conn) {
			p.log.Info("nats reconnected", "server", c.ConnectedUrlRedacted())
			select {
			case p.reconnect <- struct{}{}:
			default:
			}
		}),
	}
	if o.credsFile != "" {
		natsOpts = append(natsOpts, nats.UserCredentials(o.credsFile))
	}
	if o.user != "" {
		natsOpts = append(natsOpts, nats.UserInfo(o.user, o.password))
	}
	if o.token != "" {
		natsOpts = append(natsOpts, nats.Token(o.token))
	}
	if o.tls != nil {
		natsOpts = append(natsOpts, nats.Secure(o.tls))
	}
	nc, err := nats.Connect(url, natsOpts...)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", option.RedactURL(url), err)
	}
	p.nc = nc
	if o.coreOnly {
		return p, nil
	}
	if !nc.IsConnected() {
		// The server is not there yet: publishing sets the stream and bucket up once it is, so
		// the broadcaster starts and serves meanwhile.
		p.log.Warn("nats server unreachable; the stream and bucket are set up once it answers", "server", option.RedactURL(url))
	} else if err := p.setUpJetStream(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.done.Add(1)
	go p.restoreLoop(loopCtx)
	return p, nil
}

// restoreLoop checks, after every reconnection, that the server still has the stream and the
// bucket: a server restarted without its store has neither.
func (p *Publisher) restoreLoop(ctx context.Context) {
	defer p.done.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.reconnect:
		}
		p.mu.Lock()
		if err := p.restoreIfLost(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("nats: cannot restore the stream and bucket", "err", err)
		}
		p.mu.Unlock()
	}
}

// restoreIfLost sets the stream and the bucket up again if the server lost them, and then
// writes every entity's latest state into the bucket (with Config.Latest). p.mu is held.
func (p *Publisher) restoreIfLost(ctx context.Context) error {
	if !p.setUp || p.restoring {
		return nil
	}
	p.restoring = true
	defer func() { p.restoring = false }()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := p.js.Stream(cctx, p.opts.stream)
	if err == nil {
		_, err = p.js.KeyValue(cctx, p.opts.bucket)
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil // both there, or the server cannot say now (a later reconnection asks again)
	}
	p.log.Warn("nats server lost the stream or the bucket; setting them up again", "stream", p.opts.stream, "bucket", p.opts.bucket)
	p.setUp = false
	if err := p.ensureSetUp(ctx); err != nil {
		return err
	}
	if p.latest == nil {
		return nil
	}
	return p.putLatest(ctx)
}

// ensureSetUp sets the stream and bucket up if Dial could not, retrying until the server
// answers or ctx ends. A conflict on the server is fatal. p.mu is held.
func (p *Publisher) ensureSetUp(ctx context.Context) error {
	if p.setUp || p.opts.coreOnly {
		return nil
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := p.setUpJetStream(actx)
		if errors.Is(err, ErrConflict) {
			return struct{}{}, backoff.Permanent(fmt.Errorf("%w: %w", transports.ErrFatal, err))
		}
		return struct{}{}, err
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 200 * time.Millisecond, RandomizationFactor: 0.5,
		Multiplier: 2, MaxInterval: 5 * time.Second}), backoff.WithMaxElapsedTime(0))
	if err != nil {
		return err
	}
	p.log.Info("nats stream and bucket set up")
	return nil
}

func (p *Publisher) setUpJetStream(ctx context.Context) error {
	o := p.opts
	// An ack that never comes (a leaf node can drop the first acks to a reply subscription it
	// has not told its hub about yet) fails its publish after ackTimeout: everything from it is
	// then published again, instead of the batch waiting for ever.
	js, err := jetstream.New(p.nc, jetstream.WithPublishAsyncTimeout(ackTimeout))
	if o.domain != "" {
		js, err = jetstream.NewWithDomain(p.nc, o.domain, jetstream.WithPublishAsyncTimeout(ackTimeout))
	}
	if err != nil {
		return fmt.Errorf("nats jetstream: %w", err)
	}
	stream, subjects := o.stream, []string{p.prefix + ".>"}
	existing, err := answered(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, stream) })
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return fmt.Errorf("nats stream %s: %w", stream, err)
	case !slices.Equal(existing.CachedInfo().Config.Subjects, subjects):
		return fmt.Errorf("%w: nats stream %s exists with subjects %q, not %q: it belongs to another broadcaster or application; "+
			"choose another stream (--nats-stream) or subject prefix", ErrConflict, stream, existing.CachedInfo().Config.Subjects, subjects)
	}
	var was *jetstream.StreamConfig
	if existing != nil {
		was = &existing.CachedInfo().Config
	}
	if err := inSteps(ctx, was, func(placement *jetstream.Placement) error {
		want := jetstream.StreamConfig{
			Name: stream, Subjects: subjects, Storage: jetstream.FileStorage,
			MaxAge: o.maxAge, Duplicates: 2 * time.Minute,
			Description: "Knative event mesh deltas (one CloudEvent per entity change)",
			Replicas:    o.replicas, Placement: placement,
		}
		_, err := answered(ctx, func(ctx context.Context) (struct{}, error) {
			if s, err := js.Stream(ctx, stream); err == nil && sameStream(s.CachedInfo().Config, want) {
				return struct{}{}, nil // as wanted already: no update (see answered)
			}
			_, err := js.CreateOrUpdateStream(ctx, want)
			return struct{}{}, err
		})
		return err
	}, o.placement); err != nil {
		return p.refused("stream "+stream, was, err)
	}
	p.reportUpdate("stream "+stream, was)
	bucket := o.bucket
	// The bucket says whose it is, so a broadcaster never sweeps another one's keys.
	var bucketWas *jetstream.StreamConfig
	if existing, err := answered(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, bucket) }); err == nil {
		status, err := answered(ctx, existing.Status)
		if err != nil {
			return fmt.Errorf("nats kv bucket %s: %w", bucket, err)
		}
		var description string
		if s, ok := status.(*jetstream.KeyValueBucketStatus); ok {
			description = s.StreamInfo().Config.Description
			bucketWas = &s.StreamInfo().Config
		}
		if description != bucketDescription(p.prefix) {
			return fmt.Errorf("%w: nats kv bucket %s is not the bucket of subject prefix %q (it says %q): choose another bucket (--nats-kv-bucket) or subject prefix",
				ErrConflict, bucket, p.prefix, description)
		}
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("nats kv bucket %s: %w", bucket, err)
	}
	var kv jetstream.KeyValue
	if err := inSteps(ctx, bucketWas, func(placement *jetstream.Placement) (err error) {
		kv, err = answered(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
			if kv, err := js.KeyValue(ctx, bucket); err == nil {
				if status, err := kv.Status(ctx); err == nil {
					if s, ok := status.(*jetstream.KeyValueBucketStatus); ok && sameBucket(s.StreamInfo().Config, p.prefix, o.replicas, placement) {
						return kv, nil // as wanted already: no update (see answered)
					}
				}
			}
			return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: bucket, History: 1, Storage: jetstream.FileStorage,
				Description: bucketDescription(p.prefix),
				Replicas:    o.replicas, Placement: placement,
			})
		})
		return err
	}, o.placement); err != nil {
		return p.refused("kv bucket "+bucket, bucketWas, err)
	}
	p.reportUpdate("kv bucket "+bucket, bucketWas)
	p.js, p.kv, p.bucket, p.setUp = js, kv, kv.Bucket(), true
	return nil
}

// bucketDescription says whose entities a KV bucket holds: the subject prefix is part of it
// (servers before 2.10 keep no metadata, but every server keeps the description).
func bucketDescription(prefix string) string {
	return "latest mesh-delta event of each entity of subject prefix " + prefix
}

// ErrConflict means a name the transport needs is taken by something else on the server, or
// the server refuses to give an existing stream or bucket the settings asked for.
var ErrConflict = errors.New("conflict on the server")

// The server's refusals to change a stream's replicas and placement in one update, and to
// change it while an earlier change is under way.
const (
	errMoveAndScale         jetstream.ErrorCode = 10123
	errReconfigurationUnder jetstream.ErrorCode = 10226
)

// inSteps creates or updates a stream (apply, given the placement to ask for) to placement;
// when the server will not scale and move an existing one (was) at once, it scales first, in
// the placement it has, then moves once the scaling is done.
func inSteps(ctx context.Context, was *jetstream.StreamConfig, apply func(*jetstream.Placement) error, placement *jetstream.Placement) error {
	err := apply(placement)
	if was == nil || !isAPIError(err, errMoveAndScale) {
		return err
	}
	if err := apply(was.Placement); err != nil {
		return err
	}
	for {
		err := apply(placement)
		if !isAPIError(err, errReconfigurationUnder) {
			return err
		}
		select { // the new replicas are catching up: ask again shortly
		case <-ctx.Done():
			return fmt.Errorf("%w (waiting for the scaling to finish before the move)", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sameStream says whether a stream has the settings the broadcaster sets in want; a placement
// left unset matches any.
func sameStream(has, want jetstream.StreamConfig) bool {
	return slices.Equal(has.Subjects, want.Subjects) && has.Storage == want.Storage && has.MaxAge == want.MaxAge &&
		has.Duplicates == want.Duplicates && has.Description == want.Description && max(has.Replicas, 1) == max(want.Replicas, 1) &&
		samePlacement(has.Placement, want.Placement)
}

// sameBucket says whether a bucket's stream has the settings the broadcaster sets.
func sameBucket(has jetstream.StreamConfig, prefix string, replicas int, placement *jetstream.Placement) bool {
	return has.Description == bucketDescription(prefix) && has.MaxMsgsPerSubject == 1 && has.Storage == jetstream.FileStorage &&
		max(has.Replicas, 1) == max(replicas, 1) && samePlacement(has.Placement, placement)
}

func samePlacement(has, want *jetstream.Placement) bool {
	if want == nil {
		return true
	}
	return has != nil && has.Cluster == want.Cluster && slices.Equal(has.Tags, want.Tags)
}

// ackTimeout bounds the wait for the ack of one asynchronous publish.
const ackTimeout = 10 * time.Second

// createAttempt bounds one request about a stream or a bucket while setting them up.
const createAttempt = 3 * time.Second

// answered runs a request about a stream or a bucket, asking again while the server does not
// answer within createAttempt, until ctx ends. A JetStream cluster can leave such a request
// unanswered: seen in test/fleet (nats-server 2.15.2) when broadcasters of several clusters
// start at once, each setting up the stream and bucket they share, with no error and no reply
// for 30 s and more. So each attempt first looks whether the stream is as wanted already, and
// sends no update then.
func answered[T any](ctx context.Context, request func(context.Context) (T, error)) (T, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, createAttempt)
		v, err := request(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return v, err
		}
	}
}

func isAPIError(err error, code jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == code
}

// refusedCodes are the JetStream API errors that no retry mends: the server will not create
// or change a stream with these settings (a replica count above the servers of a
// non-clustered server, a change NATS cannot make in place, a move and a scale at once).
var refusedCodes = []jetstream.ErrorCode{10052, 10069, 10061, 10074, 10123, 10011, 10133}

// refused explains why the server would not create or update what (a "stream NAME" or a
// "kv bucket NAME"), existing with the settings was (nil: it did not exist). An error no retry
// mends is an ErrConflict naming what is and what was asked for.
func (p *Publisher) refused(what string, was *jetstream.StreamConfig, err error) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || !slices.Contains(refusedCodes, apiErr.ErrorCode) {
		return fmt.Errorf("nats %s: %w", what, err)
	}
	want := placementOf(p.opts.replicas, p.opts.placement)
	if was == nil {
		return fmt.Errorf("%w: nats %s: the server refuses to create it with %s: %w (check transports.nats.replicas and placement against the JetStream cluster)",
			ErrConflict, what, want, err)
	}
	return fmt.Errorf("%w: nats %s exists with %s; the server refuses to change it to %s: %w "+
		"(NATS changes replicas in place, but not a move and a scale at once, nor the storage; change it by hand, e.g. nats stream edit, "+
		"or set transports.nats.replicas and placement to what it has)",
		ErrConflict, what, placementOf(was.Replicas, was.Placement), want, err)
}

// reportUpdate logs what changed in the replicas or placement of an existing stream or bucket.
func (p *Publisher) reportUpdate(what string, was *jetstream.StreamConfig) {
	if was == nil {
		return
	}
	before, after := placementOf(was.Replicas, was.Placement), placementOf(p.opts.replicas, p.opts.placement)
	if before != after {
		p.log.Info("nats: updated "+what, "from", before, "to", after)
	}
}

// placementOf says where a stream's replicas are ("1 replica", "3 replicas in cluster c1 on
// servers tagged [ssd]").
func placementOf(replicas int, placement *jetstream.Placement) string {
	s := fmt.Sprintf("%d replicas", max(replicas, 1))
	if replicas <= 1 {
		s = "1 replica"
	}
	if placement != nil && placement.Cluster != "" {
		s += " in cluster " + placement.Cluster
	}
	if placement != nil && len(placement.Tags) > 0 {
		s += fmt.Sprintf(" on servers tagged %v", placement.Tags)
	}
	return s
}

// StreamName is the default stream of a subject prefix: the prefix in capitals, dots and other
// characters a stream name cannot hold turned to _ (knative.eventmesh → KNATIVE_EVENTMESH), so
// broadcasters with different prefixes never share a stream by default.
func StreamName(prefix string) string { return strings.ToUpper(nameOf(prefix)) }

// BucketName is the default KV bucket of a subject prefix: knative.eventmesh → knative_eventmesh.
func BucketName(prefix string) string { return nameOf(prefix) }

func nameOf(prefix string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return r
		}
		return '_'
	}, prefix)
}

// Check says whether Dial would accept url and opts, without connecting.
func Check(url string, opts ...Option) error {
	_, err := prepare(url, opts)
	return err
}

// prepare applies the defaults and opts and checks url: everything Dial checks.
func prepare(url string, opts []Option) (options, error) {
	o := options{subjectPrefix: DefaultSubjectPrefix, maxAge: DefaultMaxAge, replicas: 1, log: option.Discard()}
	if err := option.Apply(&o, opts...); err != nil {
		return o, err
	}
	o.stream = cmp.Or(o.stream, StreamName(o.subjectPrefix))
	o.bucket = cmp.Or(o.bucket, BucketName(o.subjectPrefix))
	for _, one := range strings.Split(url, ",") { // every server of a cluster, as nats.go takes them
		if u, err := neturl.Parse(strings.TrimSpace(one)); err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
			return o, option.Invalid(fmt.Sprintf("nats %q", option.RedactURL(one)), "want nats://host:port or tls://host:port (several comma-separated)")
		}
	}
	return o, nil
}

type outgoing struct {
	change mesh.Change
	tokens string // the key as subject tokens, for the stream subject and the KV key
	msg    *nats.Msg
}

// Publish sends changes in order and, with JetStream, waits for every ack and updates the KV
// bucket; see the package doc.
func (p *Publisher) Publish(ctx context.Context, changes []mesh.Change) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rejected []error
	out := make([]outgoing, 0, len(changes))
	for _, c := range changes {
		o, err := p.message(c)
		if err != nil {
			rejected = append(rejected, fmt.Errorf("%w: %s: %w", transports.ErrRejected, c, err))
			continue
		}
		out = append(out, o)
	}
	if err := p.ensureSetUp(ctx); err != nil {
		return err
	}
	if p.js == nil {
		if err := p.publishCore(ctx, out); err != nil {
			return err
		}
		return errors.Join(rejected...)
	}
	more, err := p.publishJetStream(ctx, out)
	if err != nil {
		return err
	}
	return errors.Join(append(rejected, more...)...)
}

// Reconcile deletes the KV entries whose entity is not in the mesh (Config.Latest): those of
// entities deleted while no broadcaster published (a restart, a leader change). It holds off
// Publish meanwhile, so an entity created during it is published after it. Without Latest, or
// in core mode, it does nothing.
func (p *Publisher) Reconcile(ctx context.Context, republish bool) error {
	if p.latest == nil || p.kv == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if republish {
		if err := p.putLatest(ctx); err != nil {
			return err
		}
	}
	// Only this broadcaster's keys: broadcasters of other clusters share the bucket.
	lister, err := p.kv.ListKeysFiltered(ctx, KeyFilter(p.cluster))
	if err != nil {
		return err
	}
	var stored []string
	for k := range lister.Keys() {
		stored = append(stored, k)
	}
	live := map[string]bool{}
	for _, c := range p.latest() {
		live[p.kvKey(KeyTokens(c.Key))] = true
	}
	deleted := 0
	for _, k := range stored {
		if live[k] {
			continue
		}
		if err := p.retry(ctx, "delete "+k, func(ctx context.Context) error { return p.kv.Delete(ctx, k) }); err != nil {
			return err
		}
		deleted++
	}
	if deleted > 0 {
		p.log.Info("nats: deleted KV entries of entities gone while nobody published", "count", deleted)
	}
	return nil
}

// putLatest writes every entity's latest event into the KV bucket (not the stream: those
// events are states, not news).
func (p *Publisher) putLatest(ctx context.Context) error {
	changes := p.latest()
	p.log.Info("nats: writing every entity's state into the KV bucket again", "entities", len(changes))
	for _, c := range changes {
		o, err := p.message(c)
		if err != nil {
			continue // it does not encode: it never reached the bucket either
		}
		m := p.kvMessage(o)
		if err := p.retry(ctx, "put "+o.tokens, func(ctx context.Context) error {
			_, err := p.js.PublishMsg(ctx, m)
			return err
		}); err != nil && !errors.Is(err, transports.ErrRejected) {
			return err
		}
	}
	return nil
}

func (p *Publisher) message(c mesh.Change) (outgoing, error) {
	payload, err := p.enc.Structured(c)
	if err != nil {
		return outgoing{}, err
	}
	tokens := KeyTokens(c.Key)
	msg := nats.NewMsg(ClusterSubjectPrefix(p.prefix, p.cluster) + "." + tokens)
	msg.Header.Set(jetstream.MsgIDHeader, mesh.EventID(c.Epoch, c.Sequence))
	msg.Header.Set("Content-Type", mesh.ContentTypeEvent)
	msg.Data = payload
	return outgoing{change: c, tokens: tokens, msg: msg}, nil
}

// publishCore publishes plain messages and waits until the server has them (a flush,
// retried while the server is away: nats.go keeps what it could not send yet).
func (p *Publisher) publishCore(ctx context.Context, out []outgoing) error {
	for _, o := range out {
		if err := p.retry(ctx, "publish "+o.msg.Subject, func(context.Context) error { return p.nc.PublishMsg(o.msg) }); err != nil {
			return err
		}
	}
	return p.retry(ctx, "flush", p.nc.FlushWithContext)
}

// publishJetStream sends, for every change in order, the event to the stream and its KV
// update (a publish to the bucket's subject, as kv.Put does), all pipelined; then it waits for
// the acks. It returns the changes rejected for good, or an error when ctx ended.
func (p *Publisher) publishJetStream(ctx context.Context, out []outgoing) (rejected []error, err error) {
	msgs := make([]*nats.Msg, 0, 2*len(out))
	for _, o := range out {
		msgs = append(msgs, o.msg, p.kvMessage(o))
	}
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		futures[i], _ = p.js.PublishMsgAsync(m) // a nil future is a loss, handled below
	}
	lostFrom := -1
	for i, f := range futures {
		acked := false
		if f != nil {
			select {
			case <-f.Ok():
				acked = true
			case <-f.Err():
			case <-ctx.Done():
				return rejected, ctx.Err()
			}
		}
		if !acked && lostFrom < 0 {
			lostFrom = i
		}
	}
	if lostFrom < 0 {
		return rejected, nil
	}
	// Something was lost (a server restarting): publish everything from the first loss again,
	// synchronously and in order. Nats-Msg-Id drops the stream copies already stored, and the
	// KV writes land in order again, so the bucket ends with each entity's latest event.
	for _, m := range msgs[lostFrom:] {
		if err := p.retry(ctx, "publish "+m.Subject, func(ctx context.Context) error {
			_, err := p.js.PublishMsg(ctx, m)
			return err
		}); err != nil {
			if !errors.Is(err, transports.ErrRejected) {
				return rejected, err
			}
			rejected = append(rejected, err)
		}
	}
	return rejected, nil
}

// kvMessage is the KV bucket update of a change: the event under the entity's key, or a
// delete marker (ADR-8's KV-Operation: DEL).
func (p *Publisher) kvMessage(o outgoing) *nats.Msg {
	m := nats.NewMsg(p.kvSubjectPrefix() + p.bucket + "." + p.kvKey(o.tokens))
	if o.change.Op == mesh.OpDeleted {
		m.Header.Set("KV-Operation", "DEL")
		return m
	}
	m.Data = o.msg.Data
	return m
}

// kvSubjectPrefix starts the subjects of KV writes: $KV., or through a JetStream domain
// $JS.<domain>.API.$KV. (which the domain's servers map to $KV., as nats.go's KV does: a leaf
// node passes no $KV. subject to its hub).
func (p *Publisher) kvSubjectPrefix() string {
	if p.opts.domain == "" {
		return "$KV."
	}
	return "$JS." + p.opts.domain + ".API.$KV."
}

// kvKey is the KV key of an entity's tokens: after the cluster's token when there is one.
func (p *Publisher) kvKey(tokens string) string {
	if p.cluster == "" {
		return tokens
	}
	return p.cluster + "." + tokens
}

// ClusterSubjectPrefix is where the events of cluster go under prefix: <prefix>.<cluster>, or
// the prefix itself without a cluster. Every broadcaster's stream still captures <prefix>.>.
func ClusterSubjectPrefix(prefix, cluster string) string {
	if cluster == "" {
		return prefix
	}
	return prefix + "." + cluster
}

// KeyFilter selects the KV keys of cluster's entities: <cluster>.*.*.*.*, or without a cluster
// the keys of four tokens (those of a broadcaster without one).
func KeyFilter(cluster string) string {
	if cluster == "" {
		return "*.*.*.*"
	}
	return cluster + ".*.*.*.*"
}

// retry runs op until it succeeds or ctx ends, each attempt bounded by 5s.
func (p *Publisher) retry(ctx context.Context, what string, op func(context.Context) error) error {
	attempt := 0
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := op(actx)
		switch {
		case errors.Is(err, nats.ErrMaxPayload):
			return struct{}{}, backoff.Permanent(fmt.Errorf("%w: %s: %w", transports.ErrRejected, what, err))
		case errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders):
			// Nobody takes our subjects: the server may have lost the stream and bucket.
			if rerr := p.restoreIfLost(ctx); rerr != nil {
				return struct{}{}, backoff.Permanent(rerr) // ctx ended, or a conflict on the server
			}
		}
		return struct{}{}, err
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 50 * time.Millisecond, RandomizationFactor: 0.5,
		Multiplier: 2, MaxInterval: 2 * time.Second}), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, _ time.Duration) {
		if attempt++; attempt == 1 || attempt%20 == 0 {
			p.log.Warn("nats: retrying", "op", what, "attempt", attempt, "err", err)
		}
	}))
	return err
}

// Connected reports whether the connection to the server is up.
func (p *Publisher) Connected() bool { return p.nc.IsConnected() }

// Close drains and closes the connection.
func (p *Publisher) Close(context.Context) error {
	if p.cancel != nil {
		p.cancel()
		p.done.Wait()
	}
	if err := p.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		p.nc.Close()
		return err
	}
	return nil
}
