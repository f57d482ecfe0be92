package nats_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/brokers"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
	"github.com/event-mesh-broadcaster/broadcaster/transports/internal/transporttest"
	natspub "github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// BenchmarkPublish: the JetStream transport beside a bare jetstream client doing the same
// work (per event: an async publish to the stream with Nats-Msg-Id, and one to the KV bucket;
// then waiting for all acks) with the same payloads, to the same server in the same run.
func BenchmarkPublish(b *testing.B) {
	srv := brokers.StartNATS(b)
	enc, _ := codec.NewEncoder("")
	b.Run("mode=transport", func(b *testing.B) {
		n := unique()
		p, err := natspub.Dial(context.Background(), srv.URL, enc, natspub.WithSubjectPrefix(n.prefix), natspub.WithStream(n.stream), natspub.WithBucket(n.bucket))
		if err != nil {
			b.Fatal(err)
		}
		defer testkit.DeleteJetStream(srv.URL, n.stream, n.bucket)
		defer p.Close(context.Background())
		transporttest.Run(b, func(batch []mesh.Change) error { return p.Publish(context.Background(), batch) })
	})
	b.Run("mode=raw", func(b *testing.B) {
		n := unique()
		// The transport creates the stream and bucket; the raw client then uses them directly.
		setup, err := natspub.Dial(context.Background(), srv.URL, enc, natspub.WithSubjectPrefix(n.prefix), natspub.WithStream(n.stream), natspub.WithBucket(n.bucket))
		if err != nil {
			b.Fatal(err)
		}
		setup.Close(context.Background())
		defer testkit.DeleteJetStream(srv.URL, n.stream, n.bucket)
		nc, err := nats.Connect(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		type prepared struct {
			subject, kvSubject, id string
			payload                []byte
		}
		msgs := map[uint64]prepared{}
		for _, c := range transporttest.Changes(transporttest.Batch * 16) {
			payload, _ := enc.Structured(c)
			tokens := natspub.KeyTokens(c.Key)
			msgs[c.Sequence] = prepared{n.prefix + "." + tokens, "$KV." + n.bucket + "." + tokens, mesh.EventID(c.Epoch, c.Sequence), payload}
		}
		transporttest.Run(b, func(batch []mesh.Change) error {
			futures := make([]jetstream.PubAckFuture, 0, 2*len(batch))
			for _, c := range batch {
				m := msgs[c.Sequence]
				f, err := js.PublishAsync(m.subject, m.payload, jetstream.WithMsgID(m.id))
				if err != nil {
					return err
				}
				g, err := js.PublishAsync(m.kvSubject, m.payload)
				if err != nil {
					return err
				}
				futures = append(futures, f, g)
			}
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					return err
				}
			}
			return nil
		})
	})
}
