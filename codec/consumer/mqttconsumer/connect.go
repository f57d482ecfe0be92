package mqttconsumer

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// ErrInvalidStream means a Stream lacks what Connect needs.
var ErrInvalidStream = errors.New("mqttconsumer: invalid stream")

// Stream says where a broadcaster publishes on MQTT and what Connect does with it.
type Stream struct {
	// Prefix is the broadcaster's topic prefix (its --mqtt-topic-prefix, "knative/eventmesh"
	// by default): Connect subscribes to <Prefix>/# at QoS 1. Required.
	Prefix string
	// Cluster, when set, follows only the broadcaster of that cluster (its events.cluster):
	// Connect subscribes to <Prefix>/<Cluster>/# instead. Empty follows every broadcaster
	// under the prefix; each change names its cluster (mesh.Change.Cluster).
	Cluster string
	// Entity, when set, receives the retained messages (each entity's latest change, which
	// the broker sends on subscribing) that are not deletes: the mesh's state rather than
	// news. Nil: Change receives them too.
	Entity func(mesh.Change) error
	// Change receives every other message's change. Required.
	Change func(mesh.Change) error
	// OnError, when set, hears what Connect skipped and went on without: a message that is
	// not a mesh-delta event or that Entity or Change refused (a *consumer.MessageError
	// naming the topic), and a subscription that failed (a *SubscribeError).
	OnError func(error)
}

// SubscribeError is a subscription to the broadcaster's topics that failed on a connection;
// the next connection tries again.
type SubscribeError struct {
	Topic string
	Err   error
}

func (e *SubscribeError) Error() string { return fmt.Sprintf("subscribe %s: %v", e.Topic, e.Err) }

func (e *SubscribeError) Unwrap() error { return e.Err }

// Connect connects to the broker as cfg says (servers, TLS, login, backoff: autopaho's
// connection manager) and follows the broadcaster's topics: on every connection it subscribes
// to <s.Prefix>/#, and it passes each message's change to s.Entity or s.Change. Empty payloads
// (a deleted entity's retained message cleared) are skipped. cfg's own OnConnectionUp and
// OnPublishReceived run first; cfg is copied, not changed. The connection ends with ctx:
// wait for it with the manager's AwaitConnection and Done.
func Connect(ctx context.Context, cfg autopaho.ClientConfig, s Stream) (*autopaho.ConnectionManager, error) {
	switch {
	case s.Prefix == "":
		return nil, fmt.Errorf("%w: no Prefix", ErrInvalidStream)
	case s.Change == nil:
		return nil, fmt.Errorf("%w: no Change", ErrInvalidStream)
	}
	if s.Cluster != "" {
		if err := mesh.CheckCluster(s.Cluster); err != nil {
			return nil, fmt.Errorf("%w: Cluster %w", ErrInvalidStream, err)
		}
	}
	topic := mesh.MQTTEntityRoot(s.Prefix, s.Cluster) + "/#"
	up := cfg.OnConnectionUp
	cfg.OnConnectionUp = func(cm *autopaho.ConnectionManager, ack *paho.Connack) {
		if up != nil {
			up(cm, ack)
		}
		if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
			s.report(&SubscribeError{Topic: topic, Err: err})
		}
	}
	cfg.OnPublishReceived = append(slices.Clip(cfg.OnPublishReceived), func(pr paho.PublishReceived) (bool, error) {
		if err := s.message(pr.Packet); err != nil {
			s.report(&consumer.MessageError{Source: pr.Packet.Topic, Err: err})
		}
		return true, nil
	})
	return autopaho.NewConnection(ctx, cfg)
}

// message passes a retained message to Entity (when set) as an entity of the mesh's state,
// and anything else to Change.
func (s Stream) message(pk *paho.Publish) error {
	if len(pk.Payload) == 0 {
		return nil // a topic cleared
	}
	c, err := codec.DecodeStructured(pk.Payload)
	if err != nil {
		return err
	}
	if s.Entity != nil && pk.Retain && c.Op != mesh.OpDeleted {
		return s.Entity(c)
	}
	return s.Change(c)
}

func (s Stream) report(err error) {
	if s.OnError != nil {
		s.OnError(err)
	}
}
