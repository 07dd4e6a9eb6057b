package events

import (
	"log/slog"
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
