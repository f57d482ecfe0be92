package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Entity messages are pipelined: many are in flight at once (up to the broker's Receive
// Maximum), yet they leave in order, so subscribers and the retained state see changes in
// order. autopaho's publish queue sends in order but reports nothing back, so the session state
// is wrapped (acks) to hand each message's outcome to the caller that queued it.

// window is how many messages one send keeps queued or in flight.
const window = 512

// message is one PUBLISH of an entity topic.
type message struct {
	topic   string
	payload []byte
	retain  bool
}

// contentType is what the message says it carries: a structured CloudEvent, or nothing for the
// empty retained message that clears a topic (it is no CloudEvent, so it does not claim one).
func (m message) contentType() string {
	if len(m.payload) == 0 {
		return ""
	}
	return mesh.ContentTypeEvent
}

// acks is the connection's session state; see above.
type acks struct {
	session.SessionManager
	mu     sync.Mutex
	queued []*pending        // in queue order, not yet in the session
	inSess map[*pending]bool // in the session, outcome not yet taken
}

type pending struct {
	message
	done chan packets.ControlPacket // PUBACK, or the zero packet when it was lost
}

func newAcks(inner session.SessionManager) *acks {
	return &acks{SessionManager: inner, inSess: map[*pending]bool{}}
}

// expect registers m before it is queued.
func (a *acks) expect(m message) *pending {
	w := &pending{message: m, done: make(chan packets.ControlPacket, 1)}
	a.mu.Lock()
	a.queued = append(a.queued, w)
	a.mu.Unlock()
	return w
}

// forget drops w once its outcome is taken (or it could not be queued).
func (a *acks) forget(w *pending) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.inSess, w)
	if i := slices.Index(a.queued, w); i >= 0 {
		a.queued = slices.Delete(a.queued, i, i+1)
	}
}

// AddToSession gives a queued message the response channel of its caller. Publishes of other
// topics (status, info, markers) and other packets pass through.
func (a *acks) AddToSession(ctx context.Context, packet session.Packet, resp chan<- packets.ControlPacket) error {
	pub, ok := packet.(*packets.Publish)
	if !ok {
		return a.SessionManager.AddToSession(ctx, packet, resp)
	}
	a.mu.Lock()
	k := slices.IndexFunc(a.queued, func(w *pending) bool {
		return w.topic == pub.Topic && w.retain == pub.Retain && bytes.Equal(w.payload, pub.Payload)
	})
	if k < 0 {
		a.mu.Unlock()
		return a.SessionManager.AddToSession(ctx, packet, resp)
	}
	for _, dropped := range a.queued[:k] { // the queue discarded these (it does for invalid ones)
		dropped.done <- packets.ControlPacket{}
	}
	a.queued = a.queued[k:]
	w := a.queued[0]
	a.mu.Unlock()
	if err := a.SessionManager.AddToSession(ctx, packet, w.done); err != nil {
		return err // the queue keeps the message and tries again
	}
	a.mu.Lock()
	a.queued = slices.DeleteFunc(a.queued, func(q *pending) bool { return q == w })
	a.inSess[w] = true
	a.mu.Unlock()
	return nil
}

// ConAckReceived tells the callers of messages that were in a session the broker no longer
// has that they were lost (the inner state drops them silently).
func (a *acks) ConAckReceived(conn io.Writer, cp *packets.Connect, ca *packets.Connack) error {
	err := a.SessionManager.ConAckReceived(conn, cp, ca)
	if !ca.SessionPresent {
		a.mu.Lock()
		for w := range a.inSess {
			select {
			case w.done <- packets.ControlPacket{}:
			default: // acknowledged before the connection dropped
			}
			delete(a.inSess, w)
		}
		a.mu.Unlock()
	}
	return err
}

// send publishes msgs pipelined and in order, retrying what was lost, until each is
// acknowledged or refused by the broker (refused[i] says why), or ctx ends. After a loss,
// everything from the first lost message is sent again, in order, so that no retained state
// ends older than it should: duplicates are harmless, reordering would not be.
func (p *Publisher) send(ctx context.Context, msgs []message) (refused []error, err error) {
	refused = make([]error, len(msgs))
	type slot struct {
		*pending
		i int // in msgs
	}
	for start := 0; start < len(msgs); {
		lost := -1
		var inFlight []slot
		for next := start; next < len(msgs) || len(inFlight) > 0; {
			for ; lost < 0 && next < len(msgs) && len(inFlight) < window; next++ {
				m := msgs[next]
				w := p.acks.expect(m)
				if err := p.cm.PublishViaQueue(ctx, &autopaho.QueuePublish{Publish: &paho.Publish{QoS: 1, Topic: m.topic,
					Payload: m.payload, Retain: m.retain, Properties: &paho.PublishProperties{ContentType: m.contentType()}}}); err != nil {
					p.acks.forget(w)
					refused[next] = err
					continue
				}
				inFlight = append(inFlight, slot{w, next})
			}
			if len(inFlight) == 0 {
				break
			}
			w, i := inFlight[0].pending, inFlight[0].i
			inFlight = inFlight[1:]
			var resp packets.ControlPacket
			select {
			case resp = <-w.done:
			case <-ctx.Done():
				p.acks.forget(w)
				for _, s := range inFlight {
					p.acks.forget(s.pending)
				}
				return refused, ctx.Err()
			}
			p.acks.forget(w)
			switch ack, _ := resp.Content.(*packets.Puback); {
			case ack == nil:
				if lost < 0 {
					lost = i
				}
			case ack.ReasonCode >= 0x80:
				refused[i] = fmt.Errorf("broker refused %s: %s", w.topic, ack.Reason())
			default:
				refused[i] = nil
			}
		}
		if lost < 0 {
			return refused, nil
		}
		p.log.Warn("mqtt: messages lost with the session; publishing again from the first lost", "topic", msgs[lost].topic, "count", len(msgs)-lost)
		if err := p.cm.AwaitConnection(ctx); err != nil {
			return refused, err
		}
		start = lost
	}
	return refused, nil
}
