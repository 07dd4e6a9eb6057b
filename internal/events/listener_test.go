package events

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"
)

type startConn struct{ last int64 }

func (c startConn) Wait(context.Context, time.Duration) (Notification, bool, error) {
	return Notification{}, false, nil
}
func (c startConn) LastPosition(context.Context) (int64, error) { return c.last, nil }
func (c startConn) ReadEvents(context.Context, int64, int) ([]Record, int64, bool, error) {
	return nil, c.last, false, nil
}
func (c startConn) Close(context.Context) error { return nil }

type positionSink struct{ got []int64 }

func (s *positionSink) Publish(recs []Record) {
	for _, r := range recs {
		s.got = append(s.got, r.Position)
	}
}
func (s *positionSink) SetPosition(int64) {}

func positions(from, to int64) []Record {
	var recs []Record
	for p := from; p <= to; p++ {
		recs = append(recs, Record{Position: p, Entity: "order", Action: "updated"})
	}
	return recs
}

// The local sequencer's batches and the listener's reads of the log meet in
// one cursor: every position reaches the sink once, in order, whichever path
// brings it first.
func TestListenerOfferAndReadsPublishEachPositionOnce(t *testing.T) {
	sink := &positionSink{}
	l := NewListener(func(context.Context) (ListenConn, error) { return startConn{last: 10}, nil },
		sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.Offer(positions(11, 12), 10, 12) // follows the cursor: published
	l.Offer(positions(14, 14), 13, 14) // a gap (13 is missing): ignored, the log read brings it
	l.publish(positions(11, 15))
	l.Offer(positions(13, 13), 12, 13) // already read from the log: ignored
	l.Offer(positions(16, 17), 15, 17)
	l.publish(positions(16, 16)) // an older read that the offer overtook
	l.Offer(nil, 17, 17)
	// A page whose last changes made no record (ignored columns): the cursor
	// covers them, and the next page follows it.
	l.Offer(positions(18, 18), 17, 20)
	l.Offer(positions(21, 21), 20, 21)
	if want := []int64{11, 12, 13, 14, 15, 16, 17, 18, 21}; !slices.Equal(sink.got, want) {
		t.Fatalf("published %v, want %v", sink.got, want)
	}
	if l.position() != 21 {
		t.Fatalf("cursor %d, want 21", l.position())
	}
}
