package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	natsgo "github.com/nats-io/nats.go"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
	"github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// tailOptions are the flags of `broadcaster tail`.
type tailOptions struct {
	watch, mqtt, nats string
	mqttPrefix        string
	natsPrefix        string
	token             string
	output            string
	color             string
}

// tailFlags binds the flags of `broadcaster tail` to o.
func tailFlags(o *tailOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("broadcaster tail", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.watch, "watch", "", "follow a broadcaster's GET /v1/watch at this base `url` (http://127.0.0.1:8080)")
	fs.StringVar(&o.mqtt, "mqtt", "", "follow this MQTT broker `url`")
	fs.StringVar(&o.nats, "nats", "", "follow this NATS server `url`")
	fs.StringVar(&o.mqttPrefix, "mqtt-topic-prefix", mqtt.DefaultTopicPrefix, "MQTT topic `prefix`")
	fs.StringVar(&o.natsPrefix, "nats-subject-prefix", nats.DefaultSubjectPrefix, "NATS subject `prefix`")
	fs.StringVar(&o.token, "token", "", "bearer token for --watch")
	fs.StringVar(&o.output, "output", "text", "text or json (one JSON object per change)")
	fs.StringVar(&o.color, "color", "auto", "auto, always or never")
	return fs
}

// tail prints mesh changes as they happen, from /v1/watch, an MQTT broker or NATS.
func tail(ctx context.Context, args []string, stdout, stderr io.Writer, isTerminal bool) error {
	var o tailOptions
	if err := tailFlags(&o).Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	sources := 0
	for _, s := range []string{o.watch, o.mqtt, o.nats} {
		if s != "" {
			sources++
		}
	}
	switch {
	case sources != 1:
		return fmt.Errorf("%w: tail: give exactly one of --watch, --mqtt, --nats", errUsage)
	case o.output != "text" && o.output != "json":
		return fmt.Errorf("%w: tail: --output %q: want text or json", errUsage, o.output)
	case o.color != "auto" && o.color != "always" && o.color != "never":
		return fmt.Errorf("%w: tail: --color %q: want auto, always or never", errUsage, o.color)
	}
	p := &printer{out: stdout, json: o.output == "json",
		color: o.color == "always" || (o.color == "auto" && isTerminal), last: map[consumer.EntityID]json.RawMessage{}}
	switch {
	case o.watch != "":
		return tailWatch(ctx, o, p)
	case o.mqtt != "":
		return tailMQTT(ctx, o, p)
	default:
		return tailNATS(ctx, o, p)
	}
}

var errUsage = errors.New("usage")

// printer writes one line per change. It remembers each entity's last state, so an update can
// say what changed even when the carrier sends only the new state.
type printer struct {
	mu    sync.Mutex
	out   io.Writer
	json  bool
	color bool
	last  map[consumer.EntityID]json.RawMessage
}

const (
	ansiReset  = "\x1b[0m"
	ansiDim    = "\x1b[2m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
)

func (p *printer) snapshot(s mesh.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(s.Mesh.Brokers) + len(s.Mesh.EventTypes) + len(s.Mesh.Sources) + len(s.Mesh.Subscribables)
	clear(p.last)
	r := consumer.NewReplica(nil)
	r.Load(s)
	maps.Copy(p.last, r.Entities())
	if p.json {
		json.NewEncoder(p.out).Encode(map[string]any{"snapshot": map[string]any{"epoch": s.Epoch, "sequence": s.Sequence, "entities": n}})
		return
	}
	fmt.Fprintf(p.out, "%ssnapshot: epoch %s, sequence %d, %d entities%s\n", p.paint(ansiDim), s.Epoch, s.Sequence, n, p.paint(ansiReset))
}

func (p *printer) change(c mesh.Change) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := consumer.EntityID{Kind: c.Kind, Key: c.Key}
	if c.Op == mesh.OpUpdated && c.Previous == nil {
		c.Previous = p.last[k]
	}
	if c.Op == mesh.OpDeleted {
		delete(p.last, k)
	} else {
		p.last[k] = c.Entity
	}
	if p.json {
		json.NewEncoder(p.out).Encode(mesh.EventData{Key: c.Key.String(), Kind: c.Kind.String(), Op: c.Op.String(),
			Epoch: c.Epoch, Sequence: c.Sequence, Entity: c.Entity})
		return
	}
	colour := map[mesh.Op]string{mesh.OpAdded: ansiGreen, mesh.OpUpdated: ansiYellow, mesh.OpDeleted: ansiRed}[c.Op]
	line := fmt.Sprintf("%s#%-6d%s %s%-12s %-7s%s %s", p.paint(ansiDim), c.Sequence, p.paint(ansiReset),
		p.paint(colour), c.Kind, c.Op, p.paint(ansiReset), c.Key)
	if s := c.Summary(); s != "" {
		line += "  " + p.paint(ansiDim) + s + p.paint(ansiReset)
	}
	fmt.Fprintln(p.out, line)
}

func (p *printer) paint(code string) string {
	if p.color {
		return code
	}
	return ""
}

// payload prints a structured-mode event; empty payloads (MQTT clearing a topic) are skipped.
func (p *printer) payload(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	c, err := codec.DecodeStructured(data)
	if err != nil {
		return err
	}
	p.change(c)
	return nil
}

func tailWatch(ctx context.Context, o tailOptions, p *printer) error {
	err := consumer.Follow(ctx, o.watch, o.token, nil, consumer.Stream{
		Snapshot: func(s mesh.Snapshot) error { p.snapshot(s); return nil },
		Delta:    p.payload,
		OnError: func(err error) bool {
			var status consumer.ErrStatus
			if errors.As(err, &status) && (status.Code == http.StatusUnauthorized || status.Code == http.StatusForbidden) {
				return false // a token problem does not fix itself
			}
			fmt.Fprintf(os.Stderr, "tail: %v; reconnecting\n", err)
			return true
		},
	})
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return fmt.Errorf("tail: %w", err)
}

func tailMQTT(ctx context.Context, o tailOptions, p *printer) error {
	u, err := url.Parse(o.mqtt)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: tail: --mqtt %q: want mqtt://host:port", errUsage, o.mqtt)
	}
	if u.Scheme == "mqtts" {
		u.Scheme = "tls"
	}
	cfg := autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		ReconnectBackoff: autopaho.NewExponentialBackoff(100*time.Millisecond, 10*time.Second, 200*time.Millisecond, 2),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: o.mqttPrefix + "/#", QoS: 1}}})
		},
		ClientConfig: paho.ClientConfig{OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				if err := p.payload(pr.Packet.Payload); err != nil {
					fmt.Fprintf(os.Stderr, "tail: %s: %v\n", pr.Packet.Topic, err)
				}
				return true, nil
			}}},
	}
	if u.User != nil {
		cfg.ConnectUsername = u.User.Username()
		password, _ := u.User.Password()
		cfg.ConnectPassword = []byte(password)
	}
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	<-cm.Done()
	return nil
}

func tailNATS(ctx context.Context, o tailOptions, p *printer) error {
	nc, err := natsgo.Connect(o.nats, natsgo.MaxReconnects(-1), natsgo.RetryOnFailedConnect(true))
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe(o.natsPrefix+".>", func(m *natsgo.Msg) {
		if err := p.payload(m.Data); err != nil {
			fmt.Fprintf(os.Stderr, "tail: %s: %v\n", m.Subject, err)
		}
	}); err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	<-ctx.Done()
	return nil
}
