package events

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ListenConn is an instance's dedicated listener connection.
type ListenConn interface {
	Wait(ctx context.Context, timeout time.Duration) (n Notification, ok bool, err error)
	LastPosition(ctx context.Context) (int64, error)
	// ReadEvents returns the records of up to limit changes after position
	// after, and the position through which the read is complete: no record
	// lies between after and through but those returned (positions of
	// changes that make no record, and jumps, are skipped). more reports
	// that records may follow through; when it is false, through is the
	// log's last position.
	ReadEvents(ctx context.Context, after int64, limit int) (recs []Record, through int64, more bool, err error)
	Close(ctx context.Context) error
}

// Sink receives what the listener reads, in order.
type Sink interface {
	Publish(recs []Record)
	SetPosition(pos int64)
}

// Listener reads the event log from its cursor and hands records to its sink.
type Listener struct {
	dial      func(context.Context) (ListenConn, error)
	sink      Sink
	log       *slog.Logger
	idle      time.Duration
	batch     int
	connected atomic.Bool
	reconnect atomic.Int64
	conn      ListenConn
	signal    func(payload string)

	// mu orders publishing: the listener's reads and the local sequencer's
	// batches (Offer) both go through it, and cursor is the last position
	// handed to the sink.
	mu     sync.Mutex
	cursor int64
}

// NewListener returns a listener that connects with dial.
func NewListener(dial func(context.Context) (ListenConn, error), sink Sink, log *slog.Logger) *Listener {
	return &Listener{dial: dial, sink: sink, log: log, idle: 30 * time.Second, batch: 2000}
}

// OnSessionSignal sets fn to receive each shopstream_sessions payload. A
// payload is a claim, not a fact: any database role may NOTIFY that channel,
// so fn must check the database before it acts. fn must return at once. Call
// before Run.
func (l *Listener) OnSessionSignal(fn func(payload string)) { l.signal = fn }

// Connected reports whether the listener's connection is up.
func (l *Listener) Connected() bool { return l.connected.Load() }

// Reconnects counts the reconnects since start.
func (l *Listener) Reconnects() int64 { return l.reconnect.Load() }

// Start connects for the first time and sets the cursor to the newest position;
// clients that want older events ask with "since". Call Run afterwards.
func (l *Listener) Start(ctx context.Context) error {
	conn, err := l.dial(ctx)
	if err != nil {
		return fmt.Errorf("connecting listener: %w", err)
	}
	pos, err := conn.LastPosition(ctx)
	if err != nil {
		_ = conn.Close(ctx)
		return fmt.Errorf("starting listener: %w", err)
	}
	l.mu.Lock()
	l.cursor = pos
	l.sink.SetPosition(pos)
	l.mu.Unlock()
	l.conn = conn
	l.connected.Store(true)
	return nil
}

// Run listens until ctx ends, reconnecting with capped backoff and reading from
// the cursor after every reconnect.
func (l *Listener) Run(ctx context.Context) {
	b := backoff{min: 50 * time.Millisecond, max: 5 * time.Second}
	for ctx.Err() == nil {
		if l.conn == nil {
			conn, err := l.dial(ctx)
			if err != nil {
				l.log.Warn("listener connect failed", "err", err)
				b.sleep(ctx)
				continue
			}
			l.conn = conn
			l.connected.Store(true)
			l.reconnect.Add(1)
			l.log.Info("listener reconnected", "cursor", l.position())
		}
		start := time.Now()
		err := l.listen(ctx, l.conn)
		l.connected.Store(false)
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = l.conn.Close(closeCtx)
		cancel()
		l.conn = nil
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("listener connection lost", "err", err, "cursor", l.position())
		if time.Since(start) > time.Minute {
			b.reset()
		}
		b.sleep(ctx)
	}
}

// listen reads the log on conn, on every ring and idle timeout, until an
// error (ctx's end comes back as one).
func (l *Listener) listen(ctx context.Context, conn ListenConn) error {
	if err := l.catchUp(ctx, conn); err != nil {
		return err
	}
	for {
		n, ok, err := conn.Wait(ctx, l.idle)
		if err != nil {
			return err
		}
		switch {
		case !ok: // idle: read anyway, which also proves the connection alive
			err = l.catchUp(ctx, conn)
		case n.Kind == NotifySessionEnded:
			if l.signal != nil {
				l.signal(n.Payload)
			}
		case n.Kind == NotifyEvents:
			if pos, perr := strconv.ParseInt(n.Payload, 10, 64); perr == nil && pos <= l.position() {
				continue
			}
			err = l.catchUp(ctx, conn)
		}
		if err != nil {
			return err
		}
	}
}

// catchUp reads every record after the cursor and publishes it. When a read
// is complete beyond its last record (positions jumped, or changes made no
// record), the cursor moves there too, so that the hub's position, which
// bounds the "since" a client may resume with, covers every position handed
// out.
func (l *Listener) catchUp(ctx context.Context, conn ListenConn) error {
	for {
		recs, through, more, err := conn.ReadEvents(ctx, l.position(), l.batch)
		if err != nil {
			return err
		}
		l.publish(recs)
		l.advance(through)
		if !more {
			return nil
		}
	}
}

// advance moves the cursor to pos, past positions no record holds.
func (l *Listener) advance(pos int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if pos > l.cursor {
		l.cursor = pos
		l.sink.SetPosition(pos)
	}
}

// Offer publishes a page the sequencer of this instance has just committed,
// the records of positions (after, through], sparing the round trip of
// reading it back. A page that does not follow the cursor (this listener is
// behind, or ahead) is ignored: the listener reads it from the log on the
// ring the sequencer sends after every page (or on its idle read, if that
// ring was lost).
func (l *Listener) Offer(recs []Record, after, through int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if after != l.cursor || through <= after {
		return
	}
	if len(recs) > 0 {
		l.sink.Publish(recs)
	}
	l.cursor = through
	if len(recs) == 0 || recs[len(recs)-1].Position < through {
		l.sink.SetPosition(through)
	}
}

// publish hands the records after the cursor to the sink. Records at or
// before the cursor were offered meanwhile.
func (l *Listener) publish(recs []Record) {
	if len(recs) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	for i < len(recs) && recs[i].Position <= l.cursor {
		i++
	}
	if i == len(recs) {
		return
	}
	l.sink.Publish(recs[i:])
	l.cursor = recs[len(recs)-1].Position
}

func (l *Listener) position() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cursor
}
