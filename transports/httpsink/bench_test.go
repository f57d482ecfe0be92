package httpsink

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports/internal/transporttest"
)

// BenchmarkPublish: the sink transport beside a bare http.Client sending the same requests
// (the same Ce-* headers and body, prepared in advance), one per event, to the same server in
// the same run; and the transport in structured mode.
func BenchmarkPublish(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	enc, _ := codec.NewEncoder("")
	b.Run("mode=transport", func(b *testing.B) {
		s, _ := New(srv.URL, enc)
		defer s.Close(context.Background())
		transporttest.Run(b, func(batch []mesh.Change) error { return s.Publish(context.Background(), batch) })
	})
	b.Run("mode=transport-structured", func(b *testing.B) {
		s, _ := New(srv.URL, enc, WithStructured())
		defer s.Close(context.Background())
		transporttest.Run(b, func(batch []mesh.Change) error { return s.Publish(context.Background(), batch) })
	})
	b.Run("mode=raw", func(b *testing.B) {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		client := &http.Client{Transport: transport}
		type prepared struct {
			header http.Header
			body   []byte
		}
		requests := map[uint64]prepared{}
		for _, c := range transporttest.Changes(transporttest.Batch * 16) {
			ev, _ := enc.Event(c)
			req, _ := http.NewRequest(http.MethodPost, srv.URL, nil)
			cehttp.WriteRequest(context.Background(), binding.ToMessage(&ev), req)
			body, _ := io.ReadAll(req.Body)
			requests[c.Sequence] = prepared{req.Header, body}
		}
		transporttest.Run(b, func(batch []mesh.Change) error {
			for _, c := range batch {
				p := requests[c.Sequence]
				req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(p.body))
				req.Header = p.header
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			return nil
		})
	})
}
