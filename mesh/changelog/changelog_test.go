package changelog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

func changes(epoch string, from, to uint64) []mesh.Change {
	var out []mesh.Change
	for seq := from; seq <= to; seq++ {
		name := fmt.Sprintf("b%d", seq)
		out = append(out, mesh.Change{Epoch: epoch, Sequence: seq, Kind: mesh.KindBroker, Op: mesh.OpAdded,
			Key: mesh.MustParseKey("eventing.knative.dev/Broker/ns/" + name), Entity: json.RawMessage(`{"namespace":"ns","name":"` + name + `"}`),
			Previous: json.RawMessage(`{}`)})
	}
	return out
}

func seqs(cs []mesh.Change) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.Sequence
	}
	return out
}

func TestSince(t *testing.T) {
	t.Parallel()
	l, err := New("ep", WithMaxChanges(5))
	if err != nil {
		t.Fatal(err)
	}
	if got, last, err := l.Since("ep", 0); err != nil || len(got) != 0 || last != 0 {
		t.Fatalf("empty log: %v %d %v", got, last, err)
	}
	l.Append(mesh.Batch{Changes: changes("ep", 1, 3), Opens: true}) // the opening stays whole
	l.Append(mesh.Batch{Changes: changes("ep", 4, 10)})             // 4 and 5 roll out
	tests := []struct {
		epoch     string
		after     uint64
		wantFirst uint64
		wantN     int
		wantErr   error
	}{
		{"ep", 0, 1, 3, ErrExpired}, // the opening, then a hole
		{"ep", 3, 0, 0, ErrExpired},
		{"ep", 5, 6, 5, nil},
		{"ep", 8, 9, 2, nil},
		{"ep", 10, 0, 0, nil},
		{"ep", 11, 0, 0, ErrAhead},
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
		if len(got) != tt.wantN || last != 10 {
			t.Errorf("Since(%s, %d): %d changes up to %d, want %d up to 10", tt.epoch, tt.after, len(got), last, tt.wantN)
		}
		for i, c := range got {
			if c.Sequence != tt.wantFirst+uint64(i) || c.Previous != nil {
				t.Errorf("Since(%s, %d)[%d] = #%d (previous %s)", tt.epoch, tt.after, i, c.Sequence, c.Previous)
			}
		}
	}
	if _, err := New("ep", WithMaxChanges(0)); err == nil {
		t.Error("size 0 accepted")
	}
}

// A reader goes through the opening, then the changes after it, in order; one that fell behind
// the log gets a declared gap and goes on; one in another epoch starts the current one.
func TestRead(t *testing.T) {
	t.Parallel()
	l, _ := New("ep", WithMaxChanges(4))
	l.Append(mesh.Batch{Changes: changes("ep", 1, 5), Opens: true})
	l.Append(mesh.Batch{Changes: changes("ep", 6, 7)})
	ctx := context.Background()
	tests := []struct {
		name       string
		from       mesh.Position
		max        int
		want       []uint64
		opens      bool
		wantMissed uint64
	}{
		{"from nothing", mesh.Position{}, 3, []uint64{1, 2, 3}, true, 0},
		{"through the opening into the log", mesh.Position{Epoch: "ep", Sequence: 4}, 10, []uint64{5, 6, 7}, false, 0},
		{"another epoch", mesh.Position{Epoch: "old", Sequence: 99}, 2, []uint64{1, 2}, true, 0},
	}
	for _, tt := range tests {
		b, err := l.Read(ctx, tt.from, tt.max)
		if err != nil || fmt.Sprint(seqs(b.Changes)) != fmt.Sprint(tt.want) || b.Opens != tt.opens || b.Missed != tt.wantMissed {
			t.Errorf("%s: Read = %v opens=%v missed=%d, %v; want %v opens=%v missed=%d", tt.name, seqs(b.Changes), b.Opens, b.Missed, err, tt.want, tt.opens, tt.wantMissed)
		}
	}
	l.Append(mesh.Batch{Changes: changes("ep", 8, 12)}) // 6..8 roll out
	if b, _ := l.Read(ctx, mesh.Position{Epoch: "ep", Sequence: 5}, 10); fmt.Sprint(seqs(b.Changes)) != "[9 10 11 12]" || b.Missed != 3 {
		t.Errorf("behind the log: %v missed %d, want [9 10 11 12] missed 3", seqs(b.Changes), b.Missed)
	}
	if b, _ := l.Read(ctx, mesh.Position{Epoch: "ep", Sequence: 2}, 10); fmt.Sprint(seqs(b.Changes)) != "[3 4 5]" || b.Missed != 0 {
		t.Errorf("the gap after the opening is declared in the next batch: %v missed %d", seqs(b.Changes), b.Missed)
	}
	// A reader at the head waits for the next change.
	got := make(chan Batch)
	go func() {
		b, _ := l.Read(ctx, mesh.Position{Epoch: "ep", Sequence: 12}, 10)
		got <- b
	}()
	time.AfterFunc(20*time.Millisecond, func() { l.Append(mesh.Batch{Changes: changes("ep", 13, 13)}) })
	if b := <-got; fmt.Sprint(seqs(b.Changes)) != "[13]" {
		t.Errorf("waiting reader got %v", seqs(b.Changes))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Read(cctx, mesh.Position{Epoch: "ep", Sequence: 13}, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel: %v", err)
	}
}

// The byte bound holds whatever the entities weigh, keeping at least the newest change.
func TestByteBound(t *testing.T) {
	t.Parallel()
	l, _ := New("ep", WithMaxBytes(1000))
	l.Append(mesh.Batch{Changes: changes("ep", 1, 1), Opens: true})
	big := changes("ep", 2, 40)
	for i := range big {
		big[i].Entity = json.RawMessage(fmt.Sprintf(`{"namespace":"ns","name":"b%d","pad":"%0400d"}`, i+2, 0))
	}
	l.Append(mesh.Batch{Changes: big})
	if l.bytes > 1000+sizeOf(big[len(big)-1]) || len(l.ring)-l.head < 1 {
		t.Fatalf("%d bytes in %d changes", l.bytes, len(l.ring)-l.head)
	}
	b, _ := l.Read(context.Background(), mesh.Position{Epoch: "ep", Sequence: 1}, 100)
	if b.Missed == 0 || b.Changes[len(b.Changes)-1].Sequence != 40 {
		t.Fatalf("read %v missed %d", seqs(b.Changes), b.Missed)
	}
}

// A new epoch replaces everything.
func TestNewEpoch(t *testing.T) {
	t.Parallel()
	l, _ := New("ep")
	l.Append(mesh.Batch{Changes: changes("ep", 1, 4), Opens: true})
	l.Append(mesh.Batch{Changes: changes("ep2", 1, 2), Opens: true})
	if _, _, err := l.Since("ep", 4); !errors.Is(err, ErrOtherEpoch) {
		t.Errorf("old epoch: err %v, want ErrOtherEpoch", err)
	}
	got, last, err := l.Since("ep2", 0)
	if err != nil || len(got) != 2 || last != 2 || got[0].Epoch != "ep2" || l.Epoch() != "ep2" {
		t.Errorf("new epoch: %v last %d err %v epoch %s", got, last, err, l.Epoch())
	}
	if b, _ := l.Read(context.Background(), mesh.Position{Epoch: "ep", Sequence: 4}, 10); !b.Opens || len(b.Changes) != 2 {
		t.Errorf("a reader of the old epoch: %v opens %v", seqs(b.Changes), b.Opens)
	}
}

// A follower loading the leader's snapshot resets the log to its position: nothing before it
// can be served, what follows it can.
func TestResetStartsTheLogAtAPosition(t *testing.T) {
	l, _ := New("old")
	l.Append(mesh.Batch{Changes: changes("old", 1, 3), Opens: true})
	l.Append(mesh.Batch{Resets: true, At: mesh.Position{Epoch: "ep", Sequence: 100}})
	if h := l.Head(); h != (mesh.Position{Epoch: "ep", Sequence: 100}) {
		t.Fatalf("head after the reset %v", h)
	}
	if got, last, err := l.Since("ep", 100); err != nil || len(got) != 0 || last != 100 {
		t.Errorf("since the reset: %v %d %v", got, last, err)
	}
	if _, _, err := l.Since("ep", 99); !errors.Is(err, ErrExpired) {
		t.Errorf("before the reset: %v, want ErrExpired", err)
	}
	l.Append(mesh.Batch{Changes: changes("ep", 101, 102)})
	if got, last, err := l.Since("ep", 100); err != nil || len(got) != 2 || last != 102 {
		t.Errorf("after the reset: %v %d %v", got, last, err)
	}
	b, err := l.Read(context.Background(), mesh.Position{Epoch: "ep", Sequence: 100}, 10)
	if err != nil || len(b.Changes) != 2 || b.Missed != 0 || b.Opens {
		t.Errorf("read from the reset: %+v %v", b, err)
	}
}
