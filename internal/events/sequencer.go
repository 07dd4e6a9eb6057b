package events

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// SequencerConn is the sequencer's dedicated database connection. Its
// methods say what the database did; the decisions (when to tick, to sleep,
// to rotate) are the Sequencer's, and building records from changes is the
// Sequencer's too: the connection hands out positioned changes and never
// calls back. After an error the Sequencer closes the connection.
type SequencerConn interface {
	// Lead waits until this connection holds the election lock (a follower
	// waits inside PostgreSQL, sending nothing, and is granted the lock the
	// moment the leader's connection closes).
	Lead(ctx context.Context) error
	// BeginTerm starts an elected sequencer's term after every position its
	// predecessors may have handed out (see the package documentation) and
	// returns that position.
	BeginTerm(ctx context.Context) (int64, error)
	// EndTerm tells the successor that no position beyond the last was used.
	EndTerm(ctx context.Context) error
	// Wait waits up to timeout for the writers' doorbell and reports whether
	// it rang; an error means the connection broke.
	Wait(ctx context.Context, timeout time.Duration) (rang bool, err error)
	// Sequence records and commits a tick over the committed changes no tick
	// holds yet and returns the first page of them, positioned (see
	// BatchRequest). While the last tick has changes not handed out yet, it
	// returns that tick's next page instead of recording a tick.
	Sequence(ctx context.Context, req BatchRequest) (Batch, error)
	// Rotate switches the capture table and truncates the oldest one once
	// every change in it is ticked and older than retention.
	Rotate(ctx context.Context, retention time.Duration) error
	// Release lets writers ring the doorbell again (Sequence silences it
	// while the sequencer works) and reports whether committed changes wait
	// for a tick; it does nothing when the doorbell was not silenced.
	Release(ctx context.Context) (pending bool, err error)
	// Announce tells every instance that the log has grown to position last.
	Announce(ctx context.Context, last int64) error
	Close(ctx context.Context) error
}

// BatchRequest is what one Sequence call may hand out: up to Limit changes,
// fewer when they pass MaxBytes together (but at least one). With Peek set
// the connection first checks cheaply whether changes wait, so that an idle
// poll writes nothing.
type BatchRequest struct {
	Limit, MaxBytes int
	Peek            bool
}

// Batch is what one Sequence call handed out: committed changes with their
// positions, in (After, Through], from Rows captured rows (a moved row's two
// rows are one change). Changes is empty when there was nothing to hand out
// (Through == After) or when the tick's changes are gone (a truncated
// capture table: Through > After). More reports that the tick has changes
// beyond Through still to hand out (the page was cut).
type Batch struct {
	Changes        []Change
	Rows           int
	After, Through int64
	More           bool
}

// SequencerConfig tunes the sequencer.
//
// Retention, PruneEvery, IdlePoll and Limits.MaxBytes are set by the
// operator (EVENT_RETENTION, EVENT_PRUNE_INTERVAL, IDLE_POLL,
// MAX_EVENT_BYTES): internal/config holds their defaults and the caller
// passes them; NewSequencer fills in none of them. A zero Retention or
// PruneEvery turns rotation off; a zero IdlePoll keeps polling every MaxPoll
// after a quiet spell. The other knobs are not exposed and have their
// defaults here.
type SequencerConfig struct {
	Columns    map[string]Columns // per entity
	Retention  time.Duration      // EVENT_RETENTION
	PruneEvery time.Duration      // EVENT_PRUNE_INTERVAL: how often to rotate
	Limits     Limits             // what one event may carry (beyond: a too_large marker)
	// Warm is how long after the last change the poll stays at most MaxPoll
	// (default 10s); after it, the sequencer polls every IdlePoll (IDLE_POLL),
	// so that a quiet service sends next to no queries. A change whose writer
	// did not ring the doorbell waits at most MaxPoll while changes flow and
	// IdlePoll after a quiet spell.
	Warm     time.Duration
	IdlePoll time.Duration

	Batch      int           // changes per page handed to the hub (default 2000)
	BatchBytes int           // and their bytes at most (default 8 MiB; one row may pass it)
	Gap        time.Duration // pause after a large batch, so that batches grow under load (default 3ms)
	Busy       int           // a batch of at least this many rows counts as load (default 8)
	MinPoll    time.Duration // first poll period once idle (default 1ms)
	MaxPoll    time.Duration // poll period while changes flow (default 20ms)
}

// Sequencer records ticks that give committed changes their positions, while
// it holds the election lock. See the package documentation.
//
// Its life is a sequence of terms: a term is one elected leadership on one
// connection, from Lead and BeginTerm to the connection's end (EndTerm when
// it stops cleanly). A term is a loop of rounds: rotate when due, tick one
// page and hand it on, then pace (another round at once, after Gap, or after
// the doorbell or a poll timeout).
type Sequencer struct {
	dial    func(context.Context) (SequencerConn, error)
	cfg     SequencerConfig
	log     *slog.Logger
	builder Builder
	leading atomic.Bool
	// committed, when set, receives each page right after its tick's COMMIT,
	// so that this instance's listener can publish it without reading it back.
	committed func(recs []Record, after, through int64)
	// now and pause are the clock and the sleep (a test's fakes).
	now   func() time.Time
	pause func(ctx context.Context, d time.Duration)
}

// NewSequencer returns a sequencer that connects with dial.
func NewSequencer(dial func(context.Context) (SequencerConn, error), cfg SequencerConfig, log *slog.Logger) *Sequencer {
	orInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	orDuration := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	orInt(&cfg.Batch, 2000)
	orInt(&cfg.BatchBytes, 8<<20)
	orInt(&cfg.Busy, 8)
	orDuration(&cfg.Gap, 3*time.Millisecond)
	orDuration(&cfg.MinPoll, time.Millisecond)
	orDuration(&cfg.MaxPoll, 20*time.Millisecond)
	orDuration(&cfg.Warm, 10*time.Second)
	return &Sequencer{dial: dial, cfg: cfg, log: log, builder: Builder{Columns: cfg.Columns, Limits: cfg.Limits, Log: log},
		now: time.Now, pause: sleep}
}

// OnCommit sets a function that receives every page the sequencer hands out,
// in order: its records and the positions (after, through] it covers. Call it
// before Run.
func (s *Sequencer) OnCommit(f func(recs []Record, after, through int64)) { s.committed = f }

// Leading reports whether this instance orders the log right now.
func (s *Sequencer) Leading() bool { return s.leading.Load() }

// Run works until ctx ends, one term per connection, reconnecting with
// capped backoff.
func (s *Sequencer) Run(ctx context.Context) {
	b := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for ctx.Err() == nil {
		conn, err := s.dial(ctx)
		if err != nil {
			s.log.Warn("sequencer connect failed", "err", err)
			s.pause(ctx, b.next())
			continue
		}
		start := s.now()
		err = s.term(ctx, conn)
		s.endTerm(ctx, conn)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("sequencer connection lost", "err", err) // the term ended
		if s.now().Sub(start) > time.Minute {
			b.reset()
		}
		s.pause(ctx, b.next())
	}
}

// endTerm closes a term's connection. A term that ends because ctx ended
// gives its unused reserved positions back first (EndTerm); one that ended
// on an error claims nothing: its connection may be broken halfway through
// a statement, and the successor skips the reservation instead.
func (s *Sequencer) endTerm(ctx context.Context, conn SequencerConn) {
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s.leading.Load() && ctx.Err() != nil {
		if err := conn.EndTerm(closeCtx); err != nil {
			s.log.Info("sequencer stopped without giving back its reserved positions: the next one skips them", "err", err)
		}
	}
	s.leading.Store(false)
	_ = conn.Close(closeCtx)
}

// termState is what a term carries from one round to the next.
type termState struct {
	poll       time.Duration // the last poll timeout
	lastChange time.Time     // when the last round handed out changes
	lastRotate time.Time
	peek       bool // the next round checks cheaply first: a poll timed out
}

// term is one elected leadership on conn: it waits for the election, then
// runs rounds until an error (ctx's end comes back as one).
func (s *Sequencer) term(ctx context.Context, conn SequencerConn) error {
	if err := s.beginTerm(ctx, conn); err != nil {
		return err
	}
	st := termState{poll: s.cfg.MinPoll, lastChange: s.now(), peek: true}
	for {
		if err := s.rotateIfDue(ctx, conn, &st); err != nil {
			return err
		}
		b, err := s.round(ctx, conn, st.peek)
		if err != nil {
			return err
		}
		if err := s.pace(ctx, conn, &st, b); err != nil {
			return err
		}
	}
}

// beginTerm waits for the election lock and starts the term, announcing
// where it starts: listeners learn of a jump at once (a client that saw a
// position of a batch a crash lost may resume with it).
func (s *Sequencer) beginTerm(ctx context.Context, conn SequencerConn) error {
	if err := conn.Lead(ctx); err != nil {
		return err
	}
	start, err := conn.BeginTerm(ctx)
	if err != nil {
		return err
	}
	if err := s.announce(ctx, conn, start); err != nil {
		return err
	}
	s.leading.Store(true)
	s.log.Info("sequencer elected: this instance orders the event log", "term_after", start)
	return nil
}

// rotateIfDue rotates the capture tables every PruneEvery, also under
// constant load (not only when idle). A failed rotation is logged and tried
// again at the next period; it ends the term only when ctx ended.
func (s *Sequencer) rotateIfDue(ctx context.Context, conn SequencerConn, st *termState) error {
	if s.cfg.Retention <= 0 || s.cfg.PruneEvery <= 0 || s.now().Sub(st.lastRotate) <= s.cfg.PruneEvery {
		return nil
	}
	st.lastRotate = s.now()
	if err := conn.Rotate(ctx, s.cfg.Retention); err != nil {
		if ctx.Err() != nil {
			return err
		}
		s.log.Warn("rotating the capture tables failed", "err", err)
	}
	return nil
}

// round ticks one page, builds its records and hands them to this instance
// (OnCommit), then rings the other instances.
func (s *Sequencer) round(ctx context.Context, conn SequencerConn, peek bool) (Batch, error) {
	b, err := conn.Sequence(ctx, BatchRequest{Limit: s.cfg.Batch, MaxBytes: s.cfg.BatchBytes, Peek: peek})
	if err != nil {
		return Batch{}, err
	}
	if b.Through <= b.After {
		return b, nil
	}
	s.commit(s.builder.Build(b.Changes), b.After, b.Through) // positioned, committed: this instance first
	// The page's captured rows (up to BatchBytes) are built: let them go, or
	// they stay reachable through pace's wait and the next page's read.
	b.Changes = nil
	return b, s.announce(ctx, conn, b.Through)
}

// pace decides what follows a round: the next page at once when the page
// was full or cut; after Gap under load (the next batch then carries many
// rows instead of a few, for a few ms of latency); otherwise, going to
// sleep, it lets writers ring again, ticks at once what they committed
// while they could not ring, or waits for the doorbell up to the poll
// period (nextPoll).
func (s *Sequencer) pace(ctx context.Context, conn SequencerConn, st *termState, b Batch) error {
	n := b.Rows
	st.peek = false
	switch {
	case n >= s.cfg.Batch || b.More:
		return nil
	case n >= s.cfg.Busy:
		st.poll = s.cfg.MinPoll
		s.pause(ctx, s.cfg.Gap)
		return nil
	}
	pending, err := conn.Release(ctx)
	if err != nil || pending {
		return err
	}
	st.poll = s.nextPoll(st.poll, n > 0, &st.lastChange)
	rang, err := conn.Wait(ctx, st.poll)
	st.peek = !rang // a ring means rows; a timeout may well mean none
	return err
}

// nextPoll is the wait before the next look for changes: short right after a
// change (more may follow soon; a ring wakes the sequencer at once anyway),
// doubling up to MaxPoll while changes flow, and IdlePoll once none came for
// Warm.
func (s *Sequencer) nextPoll(poll time.Duration, changed bool, lastChange *time.Time) time.Duration {
	now := s.now()
	switch {
	case changed:
		*lastChange = now
		return s.cfg.MinPoll
	case s.cfg.IdlePoll > 0 && now.Sub(*lastChange) > s.cfg.Warm:
		return s.cfg.IdlePoll
	case poll*2 > s.cfg.MaxPoll:
		return s.cfg.MaxPoll
	default:
		return poll * 2
	}
}

// announce rings the listeners of every instance, even as ctx ends: the batch
// is committed, and another instance may be where this one's clients resume.
func (s *Sequencer) announce(ctx context.Context, conn SequencerConn, last int64) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	return conn.Announce(actx, last)
}

// commit hands a committed page to OnCommit's function.
func (s *Sequencer) commit(recs []Record, after, through int64) {
	if s.committed != nil {
		s.committed(recs, after, through)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// backoff is a capped exponential delay.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) reset() { b.cur = 0 }

// next returns the delay to wait now and doubles the following one.
func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	}
	d := b.cur
	if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	return d
}

func (b *backoff) sleep(ctx context.Context) { sleep(ctx, b.next()) }
