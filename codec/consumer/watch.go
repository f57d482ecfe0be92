package consumer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// ErrCutOff means the broadcaster closed the watch because the consumer fell behind.
var ErrCutOff = errors.New("watch cut off: the consumer fell behind")

// Stream says what to do with the events of GET /v1/watch, and where to resume.
type Stream struct {
	// Epoch and Sequence are what the consumer already has (empty Epoch: nothing; the stream
	// starts with a snapshot).
	Epoch    string
	Sequence uint64
	// Snapshot receives the stream's snapshot event; Delta each delta's structured CloudEvent.
	Snapshot func(mesh.Snapshot) error
	Delta    func(payload []byte) error
	// SnapshotJSON, when set, receives the snapshot event's data as sent instead of Snapshot
	// (a broadcaster replicating another keeps each entity's exact bytes).
	SnapshotJSON func(data []byte) error
	// End, when set, hears the event that ends a stream (cutoff, shutdown, access).
	End func(event string, end mesh.StreamEnd)
	// Position, when set, hears that the stream has shown everything of the caller's view up
	// to sequence: the changes in between were in namespaces the caller may not see.
	Position func(epoch string, sequence uint64) error
	// OnError hears why a connection ended and says whether to reconnect (nil: always).
	OnError func(error) (reconnect bool)
}

// Follow reads GET /v1/watch at baseURL until ctx ends or s.OnError says stop, reconnecting
// with backoff, resuming from the last event seen (Last-Event-ID and ?epoch=), or from a new
// snapshot after an `access` event.
func Follow(ctx context.Context, baseURL, token string, client *http.Client, s Stream) error {
	if client == nil {
		client = &http.Client{}
	}
	url := strings.TrimSuffix(baseURL, "/") + mesh.PathWatch
	for {
		// A connection that ended cleanly is made again at once; failures back off.
		_, err := backoff.Retry(ctx, func() (struct{}, error) {
			err := s.once(ctx, url, token, client)
			if err != nil && ctx.Err() == nil && s.OnError != nil && !s.OnError(err) {
				return struct{}{}, backoff.Permanent(err)
			}
			return struct{}{}, err
		}, backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond,
			RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 5 * time.Second}), backoff.WithMaxElapsedTime(0))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
	}
}

// ErrStatus is a watch request the broadcaster answered with something else than 200.
type ErrStatus struct{ Code int }

func (e ErrStatus) Error() string { return fmt.Sprintf("watch: answered %d", e.Code) }

func (s *Stream) once(ctx context.Context, url, token string, client *http.Client) error {
	if s.Epoch != "" {
		url += "?" + neturl.Values{mesh.ParamEpoch: {s.Epoch}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// Status codes (503 while loading or beyond the caps), which the backoff below obeys.
	req.Header.Set("Accept", mesh.AcceptWatchStatuses)
	if s.Epoch != "" {
		req.Header.Set(mesh.HeaderLastEventID, mesh.StreamID(s.Epoch, s.Sequence))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ErrStatus{resp.StatusCode}
	}
	return ReadSSE(resp.Body, func(ev SSEEvent) error {
		switch ev.Type {
		case mesh.SSESnapshot:
			var snap mesh.Snapshot
			if s.SnapshotJSON != nil {
				var pos mesh.Position
				if err := json.Unmarshal(ev.Data, &pos); err != nil {
					return fmt.Errorf("watch: snapshot: %w", err)
				}
				if err := s.SnapshotJSON(ev.Data); err != nil {
					return err
				}
				snap.Epoch, snap.Sequence = pos.Epoch, pos.Sequence
			} else {
				if err := json.Unmarshal(ev.Data, &snap); err != nil {
					return fmt.Errorf("watch: snapshot: %w", err)
				}
				if err := s.Snapshot(snap); err != nil {
					return err
				}
			}
			s.Epoch, s.Sequence = snap.Epoch, snap.Sequence
		case mesh.SSEDelta:
			if err := s.Delta(ev.Data); err != nil {
				return err
			}
			s.advance(ev.ID)
		case mesh.SSEPosition:
			var pos mesh.Position
			if err := json.Unmarshal(ev.Data, &pos); err != nil {
				return fmt.Errorf("watch: position: %w", err)
			}
			if s.Position != nil {
				if err := s.Position(pos.Epoch, pos.Sequence); err != nil {
					return err
				}
			}
			if pos.Epoch == s.Epoch && pos.Sequence > s.Sequence {
				s.Sequence = pos.Sequence
			}
		case mesh.SSECutoff:
			s.ended(ev)
			return fmt.Errorf("%w: %s", ErrCutOff, ev.Data)
		case mesh.SSEBusy: // only for clients that do not ask for status codes; back off all the same
			return ErrStatus{http.StatusServiceUnavailable}
		case mesh.SSEShutdown:
			s.ended(ev)
		case mesh.SSEAccess:
			s.ended(ev)
			// The caller's view changed: start over with a snapshot of the new one (or hear
			// the refusal when reconnecting).
			s.Epoch, s.Sequence = "", 0
		}
		return nil
	})
}

// advance records a delta's id as where to resume: "<epoch>-<sequence>", or a sequence alone
// from an older broadcaster (in the epoch the stream is in).
func (s *Stream) advance(id string) {
	epoch, seq, err := mesh.ParseStreamID(id)
	if err != nil {
		return
	}
	if epoch != "" {
		s.Epoch = epoch
	}
	s.Sequence = seq
}

// ended tells End about an event that ends the stream.
func (s *Stream) ended(ev SSEEvent) {
	if s.End == nil {
		return
	}
	var end mesh.StreamEnd
	_ = json.Unmarshal(ev.Data, &end) // a malformed one still ends the stream; End hears its event
	s.End(ev.Type, end)
}

// SSEEvent is one Server-Sent Event.
type SSEEvent struct {
	Type string
	ID   string
	Data []byte
}

// ReadSSE calls fn for each event of a text/event-stream until the stream ends (nil) or fn
// fails. Comments (heartbeats) are skipped.
func ReadSSE(body io.Reader, fn func(SSEEvent) error) error {
	// A bufio.Reader rather than a Scanner: a snapshot line can be megabytes, and a Scanner
	// would keep a buffer that size for the life of the stream.
	br := bufio.NewReaderSize(body, 16<<10)
	var ev SSEEvent
	var data []string
	for {
		raw, err := br.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
		switch {
		case line == "":
			if data != nil {
				ev.Data = []byte(strings.Join(data, "\n"))
				if ev.Type == "" {
					ev.Type = "message"
				}
				if err := fn(ev); err != nil {
					return err
				}
			}
			ev, data = SSEEvent{}, nil
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				ev.Type = value
			case "id":
				ev.ID = value
			case "data":
				data = append(data, value)
			}
		}
	}
}
