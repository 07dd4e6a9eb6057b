package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestNextPoll follows the poll period through a burst and a quiet spell: short
// after a change, doubling to MaxPoll while warm, IdlePoll once Warm has passed
// without a change, and short again at the next change.
func TestNextPoll(t *testing.T) {
	s := NewSequencer(nil, SequencerConfig{MinPoll: time.Millisecond, MaxPoll: 20 * time.Millisecond,
		Warm: time.Hour, IdlePoll: 2 * time.Second}, slog.New(slog.DiscardHandler))
	last := time.Now()
	poll := s.nextPoll(0, true, &last)
	if poll != time.Millisecond {
		t.Fatalf("after a change: %v, want 1ms", poll)
	}
	var seen []time.Duration
	for range 7 {
		poll = s.nextPoll(poll, false, &last)
		seen = append(seen, poll)
	}
	want := []time.Duration{2, 4, 8, 16, 20, 20, 20}
	for i, w := range want {
		if seen[i] != w*time.Millisecond {
			t.Fatalf("warm backoff %v, want %v ms", seen, want)
		}
	}
	last = time.Now().Add(-2 * time.Hour) // the last change is past Warm
	if poll = s.nextPoll(poll, false, &last); poll != 2*time.Second {
		t.Fatalf("after a quiet spell: %v, want IdlePoll 2s", poll)
	}
	if poll = s.nextPoll(poll, true, &last); poll != time.Millisecond || time.Since(last) > time.Minute {
		t.Fatalf("a change after a quiet spell: poll %v, last change %v ago", poll, time.Since(last))
	}
}

// fakeConn is a scripted SequencerConn and the sequencer's clock: each
// method answers from its queue (then: nothing to tick, no change pending,
// no ring) and every call, sleep and page handed to OnCommit goes into calls.
// Time passes only in the sequencer's sleeps and in Waits that time out.
// When its Sequence answers run out it ends the run (cancels ctx).
type fakeConn struct {
	cancel   context.CancelFunc
	clock    time.Time
	calls    []string
	sequence []seqAnswer
	terms    []int64 // BeginTerm's answers
	pending  []bool  // Release's
	rings    []bool  // Wait's
}

type seqAnswer struct {
	b   Batch
	err error
}

func pop[T any](q *[]T) (v T) {
	if len(*q) > 0 {
		v, *q = (*q)[0], (*q)[1:]
	}
	return v
}

func (f *fakeConn) log(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeConn) Lead(context.Context) error { f.log("Lead"); return nil }
func (f *fakeConn) BeginTerm(context.Context) (int64, error) {
	f.log("BeginTerm")
	return pop(&f.terms), nil
}
func (f *fakeConn) EndTerm(context.Context) error { f.log("EndTerm"); return nil }
func (f *fakeConn) Wait(_ context.Context, timeout time.Duration) (bool, error) {
	rang := pop(&f.rings)
	if !rang {
		f.clock = f.clock.Add(timeout)
	}
	f.log("Wait %v rang=%v", timeout, rang)
	return rang, nil
}
func (f *fakeConn) Sequence(ctx context.Context, req BatchRequest) (Batch, error) {
	f.log("Sequence peek=%v", req.Peek)
	if len(f.sequence) == 0 {
		f.cancel()
		return Batch{}, ctx.Err()
	}
	a := pop(&f.sequence)
	return a.b, a.err
}
func (f *fakeConn) Rotate(context.Context, time.Duration) error { f.log("Rotate"); return nil }
func (f *fakeConn) Release(context.Context) (bool, error) {
	p := pop(&f.pending)
	f.log("Release pending=%v", p)
	return p, nil
}
func (f *fakeConn) Announce(_ context.Context, last int64) error {
	f.log("Announce %d", last)
	return nil
}
func (f *fakeConn) Close(context.Context) error { f.log("Close"); return nil }

// run runs a sequencer over f until f's script ends and returns its calls.
func (f *fakeConn) run(t *testing.T, cfg SequencerConfig) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.cancel, f.clock = cancel, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSequencer(func(context.Context) (SequencerConn, error) { f.log("dial"); return f, nil }, cfg, slog.New(slog.DiscardHandler))
	s.now = func() time.Time { return f.clock }
	s.pause = func(_ context.Context, d time.Duration) { f.clock = f.clock.Add(d); f.log("sleep %v", d) }
	s.OnCommit(func(recs []Record, after, through int64) {
		var pos []string
		for _, r := range recs {
			pos = append(pos, fmt.Sprint(r.Position))
		}
		f.log("commit (%d,%d] [%s]", after, through, strings.Join(pos, " "))
	})
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("the sequencer did not stop at the end of the script; calls so far:\n%s", strings.Join(f.calls, "\n"))
	}
	if s.Leading() {
		t.Error("still leading after Run returned")
	}
	return f.calls
}

// page is a Batch of changes at positions (one captured row each).
func page(after, through int64, more bool, positions ...int64) seqAnswer {
	b := Batch{After: after, Through: through, More: more, Rows: len(positions)}
	for _, p := range positions {
		b.Changes = append(b.Changes, Change{ID: p, Position: p, Entity: "order", Action: "created", New: []byte(`{"id":1}`)})
	}
	return seqAnswer{b: b}
}

var empty = seqAnswer{}

// The sequencer's decisions, round by round, against a scripted connection:
// when it ticks again at once, when it lets writers ring and waits, how long,
// when it rotates, what it hands its instance, and what an error does to a
// term.
func TestSequencerDecisions(t *testing.T) {
	base := SequencerConfig{MinPoll: time.Millisecond, MaxPoll: 8 * time.Millisecond, Warm: time.Hour, Gap: 3 * time.Millisecond, Busy: 8, Batch: 100}
	start := []string{"dial", "Lead", "BeginTerm", "Announce 0"}
	stop := []string{"Sequence peek=true", "EndTerm", "Close"} // the script ran out (ctx ended): the term gives its reservation back
	tests := []struct {
		name string
		cfg  func(*SequencerConfig)
		conn fakeConn
		want []string
	}{{
		name: "a cut page is followed by the next page at once, without letting writers ring",
		conn: fakeConn{sequence: []seqAnswer{page(0, 2, true, 1, 2), page(2, 3, false, 3)}},
		want: []string{"Sequence peek=true", "commit (0,2] [1 2]", "Announce 2",
			"Sequence peek=false", "commit (2,3] [3]", "Announce 3",
			"Release pending=false", "Wait 1ms rang=false"},
	}, {
		name: "a full page is followed by the next at once",
		cfg:  func(c *SequencerConfig) { c.Batch = 2 },
		conn: fakeConn{sequence: []seqAnswer{page(0, 2, false, 1, 2), empty}},
		want: []string{"Sequence peek=true", "commit (0,2] [1 2]", "Announce 2",
			"Sequence peek=false", "Release pending=false", "Wait 2ms rang=false"},
	}, {
		name: "a busy page is followed by a pause of Gap, then the next",
		cfg:  func(c *SequencerConfig) { c.Busy = 2 },
		conn: fakeConn{sequence: []seqAnswer{page(0, 2, false, 1, 2), page(2, 3, false, 3)}},
		want: []string{"Sequence peek=true", "commit (0,2] [1 2]", "Announce 2", "sleep 3ms",
			"Sequence peek=false", "commit (2,3] [3]", "Announce 3", "Release pending=false", "Wait 1ms rang=false"},
	}, {
		name: "empty rounds back off to MaxPoll, then IdlePoll once Warm passed without a change",
		cfg:  func(c *SequencerConfig) { c.Warm, c.IdlePoll = 30*time.Millisecond, time.Second },
		conn: fakeConn{sequence: []seqAnswer{empty, empty, empty, empty, empty, empty, empty, empty}},
		// the clock after each wait: 2, 6, 14, 22, 30 (not past Warm yet), 38, then idle
		want: []string{"Sequence peek=true", "Release pending=false", "Wait 2ms rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 4ms rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 8ms rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 8ms rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 8ms rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 8ms rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 1s rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 1s rang=false"},
	}, {
		name: "without IdlePoll the poll stays at MaxPoll",
		cfg:  func(c *SequencerConfig) { c.Warm = time.Millisecond },
		conn: fakeConn{sequence: []seqAnswer{empty, empty}},
		want: []string{"Sequence peek=true", "Release pending=false", "Wait 2ms rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 4ms rang=false"},
	}, {
		name: "a doorbell ring starts a round at once, without peeking; a change resets the poll",
		conn: fakeConn{sequence: []seqAnswer{empty, empty, page(0, 1, false, 1)}, rings: []bool{false, true}},
		want: []string{"Sequence peek=true", "Release pending=false", "Wait 2ms rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 4ms rang=true",
			"Sequence peek=false", "commit (0,1] [1]", "Announce 1", "Release pending=false", "Wait 1ms rang=false"},
	}, {
		name: "Release reporting changes committed meanwhile starts another round at once",
		conn: fakeConn{sequence: []seqAnswer{page(0, 1, false, 1), page(1, 2, false, 2)}, pending: []bool{true}},
		want: []string{"Sequence peek=true", "commit (0,1] [1]", "Announce 1", "Release pending=true",
			"Sequence peek=false", "commit (1,2] [2]", "Announce 2", "Release pending=false", "Wait 1ms rang=false"},
	}, {
		name: "OnCommit gets every page in order, a tick whose changes are gone too, and dropped changes keep their positions unused",
		conn: fakeConn{sequence: []seqAnswer{page(0, 2, true, 1, 2), page(2, 5, false), {b: Batch{After: 5, Through: 9, Rows: 2,
			Changes: []Change{{Position: 6, Entity: "order", Action: "created", New: []byte(`{}`)},
				{Position: 9, Entity: "order", Action: "created", New: []byte(`{}`), Refused: errors.New("from another table")}}}}}},
		want: []string{"Sequence peek=true", "commit (0,2] [1 2]", "Announce 2",
			"Sequence peek=false", "commit (2,5] []", "Announce 5",
			"Release pending=false", "Wait 2ms rang=false",
			"Sequence peek=true", "commit (5,9] [6]", "Announce 9", "Release pending=false", "Wait 1ms rang=false"},
	}, {
		name: "Rotate runs at the first round and then every PruneEvery, idle or busy",
		cfg: func(c *SequencerConfig) {
			c.Retention, c.PruneEvery, c.MaxPoll = time.Hour, 10*time.Millisecond, 4*time.Millisecond
		},
		conn: fakeConn{sequence: []seqAnswer{empty, empty, empty, empty, empty, page(0, 1, false, 1), empty}},
		// rounds start at 0, 2, 6, 10 (not past 10 ms yet), 14 (rotate), 18, 19 (after the change's 1 ms), 21
		want: []string{"Rotate", "Sequence peek=true", "Release pending=false", "Wait 2ms rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 4ms rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 4ms rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 4ms rang=false",
			"Rotate", "Sequence peek=true", "Release pending=false", "Wait 4ms rang=false",
			"Sequence peek=true", "commit (0,1] [1]", "Announce 1", "Release pending=false", "Wait 1ms rang=false",
			"Sequence peek=true", "Release pending=false", "Wait 2ms rang=false"},
	}, {
		name: "an error mid-term closes the connection without EndTerm, backs off and is elected again",
		conn: fakeConn{sequence: []seqAnswer{page(0, 1, false, 1), {err: errors.New("connection reset")}, page(100001, 100002, false, 100002)},
			terms: []int64{0, 100001}},
		want: []string{"Sequence peek=true", "commit (0,1] [1]", "Announce 1", "Release pending=false", "Wait 1ms rang=false",
			"Sequence peek=true", "Close", "sleep 100ms",
			"dial", "Lead", "BeginTerm", "Announce 100001",
			"Sequence peek=true", "commit (100001,100002] [100002]", "Announce 100002", "Release pending=false", "Wait 1ms rang=false"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			got := tc.conn.run(t, cfg)
			want := append(append(append([]string{}, start...), tc.want...), stop...)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("calls:\n%s\n\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
