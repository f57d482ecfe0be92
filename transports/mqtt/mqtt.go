package mqtt

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	neturl "net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v5"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
)

// DefaultTopicPrefix is where events go unless configured otherwise.
const DefaultTopicPrefix = "knative/eventmesh"

type options struct {
	clientID           string
	username, password string
	tls                *tls.Config
	topicPrefix        string
	sessionExpiry      time.Duration
	latest             func() []mesh.Change
	count              func() int
	epoch              string
	log                *slog.Logger
}

// Option configures a Publisher.
type Option = option.Func[options]

// Defaults of a Publisher.
const (
	DefaultSessionExpiry = time.Hour
)

// WithClientID sets the MQTT client id.
func WithClientID(id string) Option {
	return func(o *options) (err error) { o.clientID, err = option.NotEmpty("mqtt client id", id); return err }
}

// WithCredentials logs in with username and password (instead of those in the URL).
func WithCredentials(username, password string) Option {
	return func(o *options) (err error) {
		o.username, err = option.NotEmpty("mqtt username", username)
		o.password = password
		return err
	}
}

// WithTLS sets the TLS configuration of mqtts:// and tls:// URLs.
func WithTLS(c *tls.Config) Option {
	return func(o *options) (err error) { o.tls, err = option.Required("mqtt tls", c); return err }
}

// WithTopicPrefix puts the entities' topics under prefix.
func WithTopicPrefix(prefix string) Option {
	return func(o *options) error {
		prefix = strings.TrimSuffix(prefix, "/")
		if prefix == "" || strings.ContainsAny(prefix, "#+") {
			return option.Invalid("mqtt topic prefix", "%q: want a topic without wildcards", prefix)
		}
		o.topicPrefix = prefix
		return nil
	}
}

// WithSessionExpiry keeps the session (and unacknowledged messages) across reconnects for d.
func WithSessionExpiry(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 || d/time.Second > math.MaxUint32 {
			return option.Invalid("mqtt session expiry", "%v: want 1s to 136 years", d)
		}
		o.sessionExpiry = d
		return nil
	}
}

// WithLatest gives the latest change of every entity (mesh/hub's snapshot). With it, when the
// broker comes back without our session (it restarted and may have lost its retained
// messages), every entity's latest event is published retained again; and Reconcile clears
// the retained messages of entities that no longer exist.
func WithLatest(latest func() []mesh.Change) Option {
	return func(o *options) (err error) { o.latest, err = option.Required("latest", latest); return err }
}

// WithEpoch names the epoch this publisher opens, in its status messages and its Last Will.
func WithEpoch(epoch string) Option {
	return func(o *options) (err error) { o.epoch, err = option.NotEmpty("epoch", epoch); return err }
}

// WithEntityCount tells the publisher how many entities the mesh has, for the info topic.
func WithEntityCount(count func() int) Option {
	return func(o *options) (err error) { o.count, err = option.Required("entity count", count); return err }
}

// WithLogger logs connections, retries, republishing and reconciling.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) (err error) { o.log, err = option.Logger(l); return err }
}

// ClientID is the default client id of a topic prefix, so broadcasters with different
// prefixes never share a session by default (replicas of one deployment do: only the leader
// connects, and a new leader takes the session over).
func ClientID(prefix string) string { return "event-mesh-broadcaster:" + prefix }

// ClusterClientID is the default client id of a broadcaster named cluster:
// ClientID(prefix) + ":" + cluster, so broadcasters of clusters sharing a prefix never take
// each other's session; ClientID(prefix) without a cluster.
func ClusterClientID(prefix, cluster string) string {
	if cluster == "" {
		return ClientID(prefix)
	}
	return ClientID(prefix) + ":" + cluster
}

// Check says whether New would accept url and opts, without connecting.
func Check(url string, opts ...Option) error {
	_, _, err := prepare(url, opts)
	return err
}

// prepare applies the defaults and opts and reads url: everything New checks.
func prepare(url string, opts []Option) (options, *neturl.URL, error) {
	o := options{topicPrefix: DefaultTopicPrefix, sessionExpiry: DefaultSessionExpiry, log: option.Discard()}
	if err := option.Apply(&o, opts...); err != nil {
		return o, nil, err
	}
	u, err := neturl.Parse(url)
	if err != nil || u.Host == "" {
		return o, nil, option.Invalid(fmt.Sprintf("mqtt %q", url), "want mqtt://host:port or mqtts://host:port")
	}
	switch u.Scheme {
	case "mqtt", "tcp":
		u.Scheme = "mqtt"
	case "mqtts", "tls", "ssl":
		u.Scheme = "tls"
	default:
		return o, nil, option.Invalid(fmt.Sprintf("mqtt %q", url), "the scheme must be mqtt, mqtts or tls")
	}
	return o, u, nil
}

// Publisher publishes to one broker.
type Publisher struct {
	cm     *autopaho.ConnectionManager
	cancel context.CancelFunc
	prefix string
	// root is where the entities' topics start: the prefix, then the encoder's cluster as a
	// level of its own when it names one; status and info are those of the cluster.
	root, statusTopic, infoTopic string
	enc                          *codec.Encoder
	log                          *slog.Logger

	mu         sync.Mutex // one writer at a time: a republish, a sweep and live changes never interleave
	republish  chan struct{}
	birth      chan struct{}
	version    string // of the broadcaster, for the info topic
	stopStatus func() // ends statusLoop and waits for it
	statusDone chan struct{}
	epoch      string
	count      func() int
	latest     func() []mesh.Change
	collecting atomic.Pointer[retainedCollector] // set while a sweep gathers retained topics
	connected  atomic.Bool
	done       sync.WaitGroup
	acks       *acks
}

var _ transports.Reconciler = (*Publisher)(nil)

// New starts connecting to the broker at url (mqtt://host:port, or mqtts:// / tls:// for TLS;
// user:password@ in the URL logs in unless WithCredentials does) in the background: Publish
// waits for the connection. The Publisher owns the connection: it lives until Close, not until
// ctx ends (ctx gives it its values only).
// Defaults: DefaultTopicPrefix, the client id ClientID(prefix), DefaultSessionExpiry, no logging.
func New(ctx context.Context, url string, enc *codec.Encoder, opts ...Option) (*Publisher, error) {
	o, u, err := prepare(url, opts)
	if err != nil {
		return nil, err
	}
	username, password := o.username, o.password
	if username == "" && u.User != nil {
		username = u.User.Username()
		password, _ = u.User.Password()
	}
	u.User = nil
	prefix, cluster := o.topicPrefix, enc.Cluster()
	clientID := cmp.Or(o.clientID, ClusterClientID(prefix, cluster))
	p := &Publisher{prefix: prefix, enc: enc, root: mesh.MQTTEntityRoot(prefix, cluster),
		statusTopic: mesh.MQTTClusterStatusTopic(prefix, cluster), infoTopic: mesh.MQTTClusterInfoTopic(prefix, cluster), log: o.log.With("transport", "mqtt", "broker", u.Host),
		republish: make(chan struct{}, 1), birth: make(chan struct{}, 1), version: version(), latest: o.latest, count: o.count, epoch: o.epoch,
		acks: newAcks(state.NewInMemory())}
	will, _ := json.Marshal(mesh.MQTTStatus{State: mesh.StatusOffline, Epoch: o.epoch})
	var connections atomic.Int64
	pc := autopaho.ClientConfig{
		ServerUrls:                    []*neturl.URL{u},
		TlsCfg:                        o.tls,
		KeepAlive:                     20,
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         uint32(o.sessionExpiry / time.Second),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 10*time.Second, 200*time.Millisecond, 2),
		ConnectTimeout:                10 * time.Second,
		WillMessage:                   &paho.WillMessage{Topic: p.statusTopic, Payload: will, QoS: 1, Retain: true},
		WillProperties:                &paho.WillProperties{ContentType: mesh.ContentTypeJSON}, // plain JSON, not a CloudEvent
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ack *paho.Connack) {
			n := connections.Add(1)
			p.connected.Store(true)
			p.log.Info("mqtt connected", "sessionPresent", ack.SessionPresent)
			select {
			case p.birth <- struct{}{}:
			default:
			}
			if n > 1 && !ack.SessionPresent && o.latest != nil {
				select {
				case p.republish <- struct{}{}:
				default:
				}
			}
		},
		OnConnectionDown: func() bool { p.connected.Store(false); return true },
		OnConnectError:   func(err error) { p.log.Warn("mqtt connection attempt failed", "err", err) },
		ClientConfig: paho.ClientConfig{ClientID: clientID, Session: p.acks,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){p.received}},
	}
	if username != "" {
		pc.ConnectUsername, pc.ConnectPassword = username, []byte(password)
	}
	if os.Getenv("all_proxy") == "" { // through a proxy, autopaho's own dialling
		pc.AttemptConnection = dial
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cm, err := autopaho.NewConnection(ctx, pc)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt %s: %w", u.Host, err)
	}
	p.cm, p.cancel = cm, cancel
	statusCtx, stopStatus := context.WithCancel(ctx)
	p.stopStatus = func() { stopStatus(); <-p.statusDone }
	p.statusDone = make(chan struct{})
	go p.statusLoop(statusCtx)
	if o.latest != nil {
		p.done.Add(1)
		go p.republishLoop(ctx, o.latest)
	}
	return p, nil
}

// statusLoop says "online" on every connection, and again whenever the status topic says
// otherwise (a late will of an older incarnation).
func (p *Publisher) statusLoop(ctx context.Context) {
	defer close(p.statusDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.birth:
		}
		if err := p.publishStatus(ctx, mesh.StatusOnline); err != nil && ctx.Err() == nil {
			p.log.Warn("mqtt: cannot publish the status", "err", err)
		}
	}
}

func (p *Publisher) publishStatus(ctx context.Context, state string) error {
	payload, _ := json.Marshal(mesh.MQTTStatus{State: state, Epoch: p.epoch})
	topic := p.statusTopic
	if state == mesh.StatusOnline {
		if _, err := p.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
			return err
		}
	}
	return p.publish(ctx, topic, payload, true, mesh.ContentTypeJSON)
}

// publishInfo updates the info topic after a batch.
func (p *Publisher) publishInfo(ctx context.Context, last mesh.Change) error {
	info := mesh.MQTTInfo{Epoch: last.Epoch, Sequence: last.Sequence, Version: p.version}
	if p.count != nil {
		info.Entities = p.count()
	}
	payload, _ := json.Marshal(info)
	return p.publish(ctx, p.infoTopic, payload, true, mesh.ContentTypeJSON)
}

// version is the module version the broadcaster was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "(unknown)"
}

// republishLoop restores the retained state after the broker lost it.
func (p *Publisher) republishLoop(ctx context.Context, latest func() []mesh.Change) {
	defer p.done.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.republish:
		}
		changes := latest()
		p.log.Info("mqtt broker lost our session; republishing the retained state", "entities", len(changes))
		if err := p.Publish(ctx, changes); err != nil && ctx.Err() == nil {
			p.log.Error("mqtt republish", "err", err)
		}
	}
}

// Connected reports whether the connection to the broker is up.
func (p *Publisher) Connected() bool { return p.connected.Load() }

// Filter is the topic filter that matches every entity's topic.
func (p *Publisher) Filter() string { return p.root + "/#" }

// Topic is where the events of an entity go: <prefix>/<key>, or <prefix>/<cluster>/<key>.
func (p *Publisher) Topic(key mesh.Key) string { return p.root + "/" + key.String() }

// Publish sends changes in order, pipelined, each retried until the broker acknowledges it.
func (p *Publisher) Publish(ctx context.Context, changes []mesh.Change) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rejected []error
	msgs := make([]message, 0, len(changes))
	of := make([]int, 0, len(changes)) // the change of each message
	for i, c := range changes {
		ms, err := p.messages(c)
		if err != nil {
			rejected = append(rejected, fmt.Errorf("%w: %s: %w", transports.ErrRejected, c, err))
			continue
		}
		for _, m := range ms {
			msgs, of = append(msgs, m), append(of, i)
		}
	}
	refused, err := p.send(ctx, msgs)
	if err != nil {
		return err
	}
	for i, err := range refused {
		if err != nil && (i == 0 || of[i-1] != of[i] || refused[i-1] == nil) { // once per change
			rejected = append(rejected, fmt.Errorf("%w: %s: %w", transports.ErrRejected, changes[of[i]], err))
		}
	}
	if len(changes) > 0 {
		if err := p.publishInfo(ctx, changes[len(changes)-1]); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errors.Join(rejected...)
}

// Reconcile clears the retained messages under the prefix whose entity is not in the mesh
// (WithLatest): those of entities deleted while no broadcaster published (a restart, a leader
// change) or while changes were missed; with republish it first publishes every entity's latest
// event retained again. Without WithLatest it does nothing.
func (p *Publisher) Reconcile(ctx context.Context, republish bool) error {
	if p.latest == nil {
		return nil
	}
	if republish {
		changes := p.latest()
		p.log.Info("mqtt: republishing the retained state", "entities", len(changes))
		if err := p.Publish(ctx, changes); err != nil && !errors.Is(err, transports.ErrRejected) {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sweep(ctx)
}

// retainedCollector gathers the retained topics under the prefix while a sweep listens.
type retainedCollector struct {
	mu     sync.Mutex
	topics map[string]bool
	marker string
	done   chan struct{} // closed when the marker came back
	once   sync.Once
}

// received is the client's one receive handler (installed by New: autopaho's handler
// removal races with delivery). It never blocks.
func (p *Publisher) received(pr paho.PublishReceived) (bool, error) {
	if pr.Packet.Topic == p.statusTopic {
		var st mesh.MQTTStatus
		if json.Unmarshal(pr.Packet.Payload, &st) == nil && st.State != mesh.StatusOnline && st.Epoch != p.epoch && p.connected.Load() {
			select { // a will of an older incarnation overwrote this one's status: say it again
			case p.birth <- struct{}{}:
			default:
			}
		}
		return true, nil
	}
	rc := p.collecting.Load()
	if rc != nil && pr.Packet.Topic == rc.marker {
		rc.once.Do(func() { close(rc.done) })
		return true, nil
	}
	if rc == nil || !pr.Packet.Retain || len(pr.Packet.Payload) == 0 {
		return true, nil
	}
	// Only the topics of this broadcaster's entities: <root>/ and a key of four levels, never
	// those of other clusters' broadcasters under the same prefix (<prefix>/<cluster>/<key>).
	if rest, ok := strings.CutPrefix(pr.Packet.Topic, p.root+"/"); !ok || strings.Count(rest, "/") != 3 {
		return true, nil
	}
	rc.mu.Lock()
	rc.topics[pr.Packet.Topic] = true
	rc.mu.Unlock()
	return true, nil
}

func (rc *retainedCollector) take() map[string]bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return maps.Clone(rc.topics)
}

// sweepPatience bounds how long a sweep waits for the broker to send what it retains;
// markerRepeat is how often it asks again meanwhile.
const (
	sweepPatience = 5 * time.Minute
	markerRepeat  = 3 * time.Second
)

// sweep does Reconcile's work under p.mu, so no publish interleaves: an entity created
// meanwhile is published after it.
func (p *Publisher) sweep(ctx context.Context) error {
	nonce := make([]byte, 8)
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	// The marker is published after subscribing, on the same connection, so the broker sends
	// it after the retained messages it sends for the subscription: when it comes, they are
	// all in, however many there are and however slowly they flow. It is beside <prefix>/#,
	// where no consumer of the entities listens.
	marker := p.prefix + "-sweep/" + hex.EncodeToString(nonce)
	rc := &retainedCollector{topics: map[string]bool{}, marker: marker, done: make(chan struct{})}
	p.collecting.Store(rc)
	defer p.collecting.Store(nil)
	filter := p.Filter()
	// QoS 1, as a late subscriber rebuilding the mesh subscribes: the broker bounds what it
	// queues for one such subscription, so what arrives here is what such a subscriber receives.
	if _, err := p.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}, {Topic: marker, QoS: 1}}}); err != nil {
		return fmt.Errorf("subscribing to %s: %w", filter, err)
	}
	defer p.cm.Unsubscribe(context.WithoutCancel(ctx), &paho.Unsubscribe{Topics: []string{filter, marker}})
	// A broker that drops what exceeds a client's queue may drop the marker too, behind the
	// retained flood: it is published again every few seconds until one comes back (each one
	// still comes after the retained messages).
	patience := time.After(sweepPatience)
	for echoed := false; !echoed; {
		if err := p.publish(ctx, marker, nil, false, ""); err != nil {
			return err
		}
		select {
		case <-rc.done:
			echoed = true
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(markerRepeat):
		case <-patience:
			return fmt.Errorf("the broker did not echo the sweep's marker within %v (stalled, or dropping what exceeds a "+
				"client's queue: Mosquitto's max_queued_messages): nothing cleared", sweepPatience)
		}
	}
	p.collecting.Store(nil) // what is retained is in; stop before clearing
	stale := rc.take()
	live := map[string]bool{}
	for _, c := range p.latest() {
		if topic := p.Topic(c.Key); checkTopic(topic) == nil {
			live[topic] = true
		}
	}
	var clears []message
	seenLive := 0
	for topic := range stale {
		if live[topic] {
			seenLive++
		} else {
			clears = append(clears, message{topic: topic, retain: true})
		}
	}
	refused, err := p.send(ctx, clears)
	if err != nil {
		return err
	}
	if err := errors.Join(refused...); err != nil {
		return fmt.Errorf("clearing retained messages: %w", err)
	}
	if len(clears) > 0 {
		p.log.Info("mqtt: cleared retained messages of entities gone while nobody published", "count", len(clears))
	}
	if seenLive < len(live) {
		// Every live entity is retained by now; the broker sent fewer: it dropped the rest.
		return fmt.Errorf("the broker sent %d of the %d retained messages of the mesh to a new subscription: it drops what "+
			"exceeds its per-client queue (Mosquitto: max_queued_messages, max_queued_bytes), so late subscribers get "+
			"part of the mesh, and stale retained messages among the rest were not cleared", seenLive, len(live))
	}
	return nil
}

// messages are what a change publishes: its event, retained, or for a deletion the event
// and then an empty retained message that clears the topic.
func (p *Publisher) messages(c mesh.Change) ([]message, error) {
	topic := p.Topic(c.Key)
	if err := checkTopic(topic); err != nil {
		return nil, err // rejected for this transport alone: nothing else is held up
	}
	payload, err := p.enc.Structured(c)
	if err != nil {
		return nil, err
	}
	if c.Op != mesh.OpDeleted {
		return []message{{topic, payload, true}}, nil
	}
	return []message{{topic, payload, false}, {topic, nil, true}}, nil
}

// checkTopic refuses a topic MQTT cannot carry: wildcards and NUL are not allowed in a topic
// name, which must be UTF-8 and at most 65,535 bytes.
func checkTopic(topic string) error {
	switch {
	case strings.ContainsAny(topic, "#+\x00"):
		return fmt.Errorf("topic %q: MQTT topic names cannot hold #, + or NUL", topic)
	case !utf8.ValidString(topic):
		return fmt.Errorf("topic %q: not UTF-8", topic)
	case len(topic) > 65535:
		return fmt.Errorf("topic of %d bytes: MQTT allows 65,535", len(topic))
	}
	return nil
}

// publish retries until the broker acks, waiting for reconnection in between. A broker's
// refusal (a reason code ≥ 0x80) is final. contentType is what the payload is ("": none, for
// an empty payload).
func (p *Publisher) publish(ctx context.Context, topic string, payload []byte, retain bool, contentType string) error {
	msg := &paho.Publish{QoS: 1, Topic: topic, Payload: payload, Retain: retain,
		Properties: &paho.PublishProperties{ContentType: contentType}}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		if err := p.cm.AwaitConnection(ctx); err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		resp, err := p.cm.Publish(ctx, msg)
		if err != nil && resp != nil && resp.ReasonCode >= 0x80 {
			return struct{}{}, backoff.Permanent(fmt.Errorf("broker refused %s: reason code 0x%x", topic, resp.ReasonCode))
		}
		return struct{}{}, err
	}, backoff.WithBackOff(newBackoff()), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, _ time.Duration) {
		p.log.Warn("mqtt publish failed; retrying after reconnect", "topic", topic, "err", err)
	}))
	return err
}

// newBackoff paces the retries of one publish.
func newBackoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2,
		MaxInterval: 5 * time.Second}
}

// Close disconnects from the broker.
func (p *Publisher) Close(ctx context.Context) error {
	defer p.done.Wait()
	defer p.cancel()
	p.stopStatus()          // no "online" may follow the "offline" below
	if p.connected.Load() { // a clean stop says so (the will is for unclean ones)
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := p.publishStatus(sctx, mesh.StatusOffline); err != nil {
			p.log.Warn("mqtt: cannot publish the offline status", "err", err)
		}
		cancel()
	}
	err := p.cm.Disconnect(ctx)
	p.acks.Close() // releases publishes waiting for a slot in the session
	if errors.Is(err, autopaho.ConnectionDownError) {
		return nil
	}
	return err
}
