package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Snapshotter fetches the current snapshot.
type Snapshotter interface {
	Snapshot(ctx context.Context) (mesh.Snapshot, error)
}

// Catcher is a Snapshotter that can also serve the changes after a sequence (GET /v1/deltas),
// so a small gap costs a few events instead of a whole snapshot.
type Catcher interface {
	Snapshotter
	// Deltas returns the changes of epoch after sequence since; ErrGone when they are no longer
	// available (the replica then takes a snapshot).
	Deltas(ctx context.Context, epoch string, since uint64) ([]mesh.Change, error)
}

// ErrGone means the broadcaster no longer has the changes asked for (410 Gone).
var ErrGone = errors.New("changes no longer available")

// ErrUnavailable means the broadcaster cannot answer yet (503: its mesh is loading, or a
// follower has not reached the leader); asking again shortly, or another replica, helps.
var ErrUnavailable = errors.New("broadcaster not ready")

// HTTPSnapshots reads snapshots from a broadcaster's GET /v1/mesh at baseURL, and catches up
// through GET /v1/deltas. token, when not
// empty, is sent as a bearer token. A nil client means one with a 30s timeout.
func HTTPSnapshots(baseURL, token string, client *http.Client) Snapshotter {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return httpSnapshots{base: strings.TrimSuffix(baseURL, "/"), token: token, client: client}
}

type httpSnapshots struct {
	base, token string
	client      *http.Client
}

var _ Catcher = httpSnapshots{}

func (h httpSnapshots) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+path, nil)
	if err != nil {
		return nil, err
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		err := fmt.Errorf("%s answered %d: %s", h.base+path, resp.StatusCode, strings.TrimSpace(string(body)))
		switch resp.StatusCode {
		case http.StatusGone:
			err = fmt.Errorf("%w: %w", ErrGone, err)
		case http.StatusServiceUnavailable:
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return nil, err
	}
	return resp, nil
}

func (h httpSnapshots) Snapshot(ctx context.Context) (mesh.Snapshot, error) {
	resp, err := h.get(ctx, mesh.PathMesh)
	if err != nil {
		return mesh.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	defer resp.Body.Close()
	var s mesh.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return mesh.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	return s, nil
}

func (h httpSnapshots) Deltas(ctx context.Context, epoch string, since uint64) ([]mesh.Change, error) {
	q := url.Values{mesh.ParamEpoch: {epoch}, mesh.ParamSince: {strconv.FormatUint(since, 10)}}
	resp, err := h.get(ctx, mesh.PathDeltas+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("deltas: %w", err)
	}
	defer resp.Body.Close()
	var batch []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&batch); err != nil {
		return nil, fmt.Errorf("deltas: %w", err)
	}
	out := make([]mesh.Change, len(batch))
	for i, raw := range batch {
		if out[i], err = codec.DecodeStructured(raw); err != nil {
			return nil, fmt.Errorf("deltas: %w", err)
		}
	}
	return out, nil
}
