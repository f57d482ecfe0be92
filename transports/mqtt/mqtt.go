package mqtt

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
)

// DefaultTopicPrefix is where events go unless configured otherwise.
const DefaultTopicPrefix = "knative/eventmesh"

// Config says how to reach the broker.
type Config struct {
	// URL is mqtt://host:port, or mqtts:// / tls:// for TLS; user:password@ in the URL is used
	// when Username is empty.
	URL      string
	ClientID string // default "event-mesh-broadcaster"
	Username string
	Password string
	TLS      *tls.Config
	// TopicPrefix defaults to DefaultTopicPrefix.
	TopicPrefix string
	// SessionExpiry keeps the session (and unacknowledged messages) across reconnects (default 1h).
	SessionExpiry time.Duration
	// Latest lists the latest change of every entity (mesh/hub's snapshot). When set, and the
	// broker comes back without our session (it restarted and may have lost its retained
	// messages), every entity's latest event is published retained again; and Reconcile
	// clears the retained messages of entities that no longer exist (deleted while no
	// broadcaster published).
	Latest func() []mesh.Change
}

// Publisher publishes to one broker.
type Publisher struct {
	cm     *autopaho.ConnectionManager
	cancel context.CancelFunc
	prefix string
	enc    *codec.Encoder
	log    *slog.Logger

	mu         sync.Mutex // one writer at a time: a republish, a sweep and live changes never interleave
	republish  chan struct{}
	latest     func() []mesh.Change
	collecting atomic.Pointer[retainedCollector] // set while a sweep gathers retained topics
	done       sync.WaitGroup
}

var _ transports.Reconciler = (*Publisher)(nil)

// Dial starts connecting to the broker (in the background: Publish waits for the connection)
// and returns the publisher, which owns the connection.
func Dial(cfg Config, enc *codec.Encoder, log *slog.Logger) (*Publisher, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("mqtt url %q: want mqtt://host:port", cfg.URL)
	}
	switch u.Scheme {
	case "mqtt", "tcp":
		u.Scheme = "mqtt"
	case "mqtts", "tls", "ssl":
		u.Scheme = "tls"
	default:
		return nil, fmt.Errorf("mqtt url %q: scheme must be mqtt, mqtts or tls", cfg.URL)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prefix := strings.TrimSuffix(cmp.Or(cfg.TopicPrefix, DefaultTopicPrefix), "/")
	if strings.ContainsAny(prefix, "#+") {
		return nil, fmt.Errorf("mqtt topic prefix %q: wildcards are not allowed", prefix)
	}
	username, password := cfg.Username, cfg.Password
	if username == "" && u.User != nil {
		username = u.User.Username()
		password, _ = u.User.Password()
	}
	u.User = nil
	expiry := cfg.SessionExpiry
	if expiry == 0 {
		expiry = time.Hour
	}
	p := &Publisher{prefix: prefix, enc: enc, log: log.With("transport", "mqtt", "broker", u.Host),
		republish: make(chan struct{}, 1), latest: cfg.Latest}
	var connections atomic.Int64
	pc := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        cfg.TLS,
		KeepAlive:                     20,
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         uint32(expiry / time.Second),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 10*time.Second, 200*time.Millisecond, 2),
		ConnectTimeout:                10 * time.Second,
		OnConnectionUp: func(_ *autopaho.ConnectionManager, ack *paho.Connack) {
			n := connections.Add(1)
			p.log.Info("mqtt connected", "sessionPresent", ack.SessionPresent)
			if n > 1 && !ack.SessionPresent && cfg.Latest != nil {
				select {
				case p.republish <- struct{}{}:
				default:
				}
			}
		},
		OnConnectError: func(err error) { p.log.Warn("mqtt connection attempt failed", "err", err) },
		ClientConfig: paho.ClientConfig{ClientID: cmp.Or(cfg.ClientID, "event-mesh-broadcaster"),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){p.received}},
	}
	if username != "" {
		pc.ConnectUsername, pc.ConnectPassword = username, []byte(password)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, pc)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt %s: %w", u.Host, err)
	}
	p.cm, p.cancel = cm, cancel
	if cfg.Latest != nil {
		p.done.Add(1)
		go p.republishLoop(ctx, cfg.Latest)
	}
	return p, nil
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

// Filter is the topic filter that matches every entity's topic.
func (p *Publisher) Filter() string { return p.prefix + "/#" }

// Topic is where the events of an entity go.
func (p *Publisher) Topic(key mesh.Key) string { return p.prefix + "/" + key.String() }

// Publish sends changes in order, each retried until the broker acknowledges it.
func (p *Publisher) Publish(ctx context.Context, changes []mesh.Change) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rejected []error
	for _, c := range changes {
		payload, err := p.enc.Structured(c)
		if err == nil {
			err = p.publishChange(ctx, c, payload)
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			rejected = append(rejected, fmt.Errorf("%w: %s: %w", transports.ErrRejected, c, err))
		}
	}
	return errors.Join(rejected...)
}

// Reconcile clears the retained messages under the prefix whose entity is not in the mesh
// (Config.Latest): those of entities deleted while no broadcaster published (a restart, a
// leader change). Without Latest it does nothing.
func (p *Publisher) Reconcile(ctx context.Context) error {
	if p.latest == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sweep(ctx)
}

// retainedCollector gathers the retained topics under the prefix while a sweep listens.
type retainedCollector struct {
	mu      sync.Mutex
	topics  map[string]bool
	arrived chan struct{}
}

// received is the client's one receive handler (installed at Dial: autopaho's handler
// removal races with delivery). It never blocks.
func (p *Publisher) received(pr paho.PublishReceived) (bool, error) {
	rc := p.collecting.Load()
	if rc == nil || !pr.Packet.Retain || len(pr.Packet.Payload) == 0 || !strings.HasPrefix(pr.Packet.Topic, p.prefix+"/") {
		return true, nil
	}
	rc.mu.Lock()
	rc.topics[pr.Packet.Topic] = true
	rc.mu.Unlock()
	select {
	case rc.arrived <- struct{}{}:
	default:
	}
	return true, nil
}

func (rc *retainedCollector) take() map[string]bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return maps.Clone(rc.topics)
}

// sweepQuiet is how long the broker may pause between retained messages before the sweep
// takes it that all have arrived.
const sweepQuiet = 300 * time.Millisecond

// sweep does Reconcile's work under p.mu, so no publish interleaves: an entity created
// meanwhile is published after it.
func (p *Publisher) sweep(ctx context.Context) error {
	rc := &retainedCollector{topics: map[string]bool{}, arrived: make(chan struct{}, 1)}
	p.collecting.Store(rc)
	defer p.collecting.Store(nil)
	filter := p.prefix + "/#"
	if _, err := p.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 0}}}); err != nil {
		return fmt.Errorf("subscribing to %s: %w", filter, err)
	}
	defer p.cm.Unsubscribe(context.WithoutCancel(ctx), &paho.Unsubscribe{Topics: []string{filter}})
	quiet := time.NewTimer(sweepQuiet)
	defer quiet.Stop()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
collect:
	for {
		select {
		case <-rc.arrived:
			quiet.Reset(sweepQuiet)
		case <-quiet.C:
			break collect
		case <-deadline.C:
			break collect
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.collecting.Store(nil) // what is retained is in; stop before clearing
	stale := rc.take()
	live := map[string]bool{}
	for _, c := range p.latest() {
		live[p.Topic(c.Key)] = true
	}
	cleared := 0
	for topic := range stale {
		if live[topic] {
			continue
		}
		if err := p.publish(ctx, topic, nil, true); err != nil {
			return err
		}
		cleared++
	}
	if cleared > 0 {
		p.log.Info("mqtt: cleared retained messages of entities gone while nobody published", "count", cleared)
	}
	return nil
}

func (p *Publisher) publishChange(ctx context.Context, c mesh.Change, payload []byte) error {
	topic := p.Topic(c.Key)
	if c.Op != mesh.OpDeleted {
		return p.publish(ctx, topic, payload, true)
	}
	if err := p.publish(ctx, topic, payload, false); err != nil {
		return err
	}
	return p.publish(ctx, topic, nil, true) // clears the retained state
}

// publish retries until the broker acks, waiting for reconnection in between. A broker's
// refusal (a reason code ≥ 0x80) is final.
func (p *Publisher) publish(ctx context.Context, topic string, payload []byte, retain bool) error {
	msg := &paho.Publish{QoS: 1, Topic: topic, Payload: payload, Retain: retain,
		Properties: &paho.PublishProperties{ContentType: mesh.ContentTypeEvent}}
	for {
		if err := p.cm.AwaitConnection(ctx); err != nil {
			return err
		}
		resp, err := p.cm.Publish(ctx, msg)
		if err == nil {
			return nil
		}
		if resp != nil && resp.ReasonCode >= 0x80 {
			return fmt.Errorf("broker refused %s: reason code 0x%x", topic, resp.ReasonCode)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.log.Warn("mqtt publish failed; retrying after reconnect", "topic", topic, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close disconnects from the broker.
func (p *Publisher) Close(ctx context.Context) error {
	defer p.done.Wait()
	defer p.cancel()
	err := p.cm.Disconnect(ctx)
	if errors.Is(err, autopaho.ConnectionDownError) {
		return nil
	}
	return err
}
