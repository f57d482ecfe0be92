package resync

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
)

func changes(from, to uint64) []mesh.Change {
	var out []mesh.Change
	for seq := from; seq <= to; seq++ {
		name := fmt.Sprintf("b%d", seq)
		out = append(out, mesh.Change{Epoch: "ep", Sequence: seq, Kind: mesh.KindBroker, Op: mesh.OpAdded,
			Key: mesh.MustParseKey("eventing.knative.dev/Broker/ns/" + name), Entity: json.RawMessage(`{"namespace":"ns","name":"` + name + `"}`),
			Previous: json.RawMessage(`{}`)})
	}
	return out
}

func TestLogSince(t *testing.T) {
	t.Parallel()
	l, err := NewLog("ep", WithLogCapacity(5))
	if err != nil {
		t.Fatal(err)
	}
	if got, last, err := l.Since("ep", 0); err != nil || len(got) != 0 || last != 0 {
		t.Fatalf("empty log: %v %d %v", got, last, err)
	}
	l.Append(hub.Batch{Changes: changes(1, 3), Opens: true})
	l.Append(hub.Batch{Changes: changes(4, 8)}) // 1..3 roll out
	tests := []struct {
		epoch     string
		after     uint64
		wantFirst uint64
		wantN     int
		wantErr   error
	}{
		{"ep", 3, 4, 5, nil},
		{"ep", 6, 7, 2, nil},
		{"ep", 8, 0, 0, nil},
		{"ep", 2, 0, 0, ErrExpired},
		{"ep", 9, 0, 0, ErrAhead},
		{"other", 6, 0, 0, ErrOtherEpoch},
	}
	for _, tt := range tests {
		got, last, err := l.Since(tt.epoch, tt.after)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("Since(%s, %d): error %v, want %v", tt.epoch, tt.after, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if len(got) != tt.wantN || last != 8 {
			t.Errorf("Since(%s, %d): %d changes up to %d, want %d up to 8", tt.epoch, tt.after, len(got), last, tt.wantN)
		}
		for i, c := range got {
			if c.Sequence != tt.wantFirst+uint64(i) || c.Previous != nil {
				t.Errorf("Since(%s, %d)[%d] = #%d (previous %s)", tt.epoch, tt.after, i, c.Sequence, c.Previous)
			}
		}
	}
	if _, err := NewLog("ep", WithLogCapacity(0)); err == nil {
		t.Error("size 0 accepted")
	}
}

// A batch opening a new epoch (the hub restarted) empties the log and serves the new epoch only.
func TestLogFollowsANewEpoch(t *testing.T) {
	t.Parallel()
	l, err := NewLog("ep", WithLogCapacity(5))
	if err != nil {
		t.Fatal(err)
	}
	l.Append(hub.Batch{Changes: changes(1, 4), Opens: true})
	next := changes(1, 2)
	for i := range next {
		next[i].Epoch = "ep2"
	}
	l.Append(hub.Batch{Changes: next, Opens: true})
	if _, _, err := l.Since("ep", 4); !errors.Is(err, ErrOtherEpoch) {
		t.Errorf("old epoch: err %v, want ErrOtherEpoch", err)
	}
	got, last, err := l.Since("ep2", 0)
	if err != nil || len(got) != 2 || last != 2 || got[0].Epoch != "ep2" || l.Epoch() != "ep2" {
		t.Errorf("new epoch: %v last %d err %v epoch %s", got, last, err, l.Epoch())
	}
}
