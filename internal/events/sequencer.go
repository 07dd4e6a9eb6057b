package events

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// SequencerConn is the sequencer's dedicated database connection.
type SequencerConn interface {
	// Lead waits until this connection holds the election lock (a follower
	// waits inside PostgreSQL, sending nothing, and is granted the lock the
	// moment the leader's session ends).
	Lead(ctx context.Context) error
	// BeginTerm starts an elected sequencer's work after every position its
	// predecessors may have handed out (see the package documentation) and
	// returns that position.
	BeginTerm(ctx context.Context) (int64, error)
	// EndTerm tells the successor that no position beyond the last was used.
	EndTerm(ctx context.Context) error
	Wait(ctx context.Context, timeout time.Duration) (rang bool, err error)
	// Sequence records a tick over the committed changes no tick holds yet
	// and hands build the first page of them, positioned: up to limit
	// changes, fewer when they pass maxBytes together (but at least one).
	// While the last tick has changes not handed out yet, it hands build its
	// next page instead of recording a tick.
	Sequence(ctx context.Context, limit, maxBytes int, peek bool, build func([]Change) []Record) (Batch, error)
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

// Batch is what one Sequence call handed out: Rows changes, with positions in
// (After, Through]; positions of changes the build dropped stay unused.
// Rows is 0 when there was nothing to hand out. More reports that the tick
// has changes beyond Through still to hand out (the page was cut).
type Batch struct {
	Rows           int
	After, Through int64
	More           bool
}

// SequencerConfig tunes the sequencer.
type SequencerConfig struct {
	Columns    map[string]Columns // per entity
	Retention  time.Duration
	PruneEvery time.Duration // default 1 minute
	Batch      int           // changes per page handed to the hub (default 2000)
	BatchBytes int           // and their bytes at most (default 8 MiB; one row may pass it)
	Limits     Limits        // what one event may carry (beyond: a too_large marker)
	Gap        time.Duration // pause after a large batch, so that batches grow under load (default 3ms)
	Busy       int           // a batch of at least this many rows counts as load (default 8)
	MinPoll    time.Duration // first poll period once idle (default 1ms)
	MaxPoll    time.Duration // poll period while changes flow (default 20ms)
	// Warm is how long after the last change the poll stays at most MaxPoll
	// (default 10s); after it, the sequencer polls every IdlePoll (default 2s),
	// so that a quiet service sends next to no queries. A change whose writer
	// did not ring the doorbell waits at most MaxPoll while changes flow and
	// IdlePoll after a quiet spell.
	Warm     time.Duration
	IdlePoll time.Duration
}

// Sequencer records ticks that give committed changes their positions, while
// it holds the election lock. See the package documentation.
type Sequencer struct {
	dial    func(context.Context) (SequencerConn, error)
	cfg     SequencerConfig
	log     *slog.Logger
	builder Builder
	leading atomic.Bool
	// committed, when set, receives each page right after its tick's COMMIT,
	// so that this instance's listener can publish it without reading it back.
	committed func(recs []Record, after, through int64)
}

// NewSequencer returns a sequencer that connects with dial.
func NewSequencer(dial func(context.Context) (SequencerConn, error), cfg SequencerConfig, log *slog.Logger) *Sequencer {
	if cfg.Batch <= 0 {
		cfg.Batch = 2000
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 8 << 20
	}
	if cfg.Gap <= 0 {
		cfg.Gap = 3 * time.Millisecond
	}
	if cfg.Busy <= 0 {
		cfg.Busy = 8
	}
	if cfg.MinPoll <= 0 {
		cfg.MinPoll = time.Millisecond
	}
	if cfg.MaxPoll <= 0 {
		cfg.MaxPoll = 20 * time.Millisecond
	}
	if cfg.PruneEvery <= 0 {
		cfg.PruneEvery = time.Minute
	}
	if cfg.Warm <= 0 {
		cfg.Warm = 10 * time.Second
	}
	if cfg.IdlePoll <= 0 {
		cfg.IdlePoll = 2 * time.Second
	}
	return &Sequencer{dial: dial, cfg: cfg, log: log, builder: Builder{Columns: cfg.Columns, Limits: cfg.Limits, Log: log}}
}

// OnCommit sets a function that receives every page the sequencer hands out,
// in order: its records and the positions (after, through] it covers. Call it
// before Run.
func (s *Sequencer) OnCommit(f func(recs []Record, after, through int64)) { s.committed = f }

// Leading reports whether this instance orders the log right now.
func (s *Sequencer) Leading() bool { return s.leading.Load() }

// Run works until ctx ends, reconnecting with capped backoff.
func (s *Sequencer) Run(ctx context.Context) {
	b := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for ctx.Err() == nil {
		conn, err := s.dial(ctx)
		if err != nil {
			s.log.Warn("sequencer connect failed", "err", err)
			b.sleep(ctx)
			continue
		}
		start := time.Now()
		err = s.session(ctx, conn)
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		if s.leading.Load() && ctx.Err() != nil {
			if err := conn.EndTerm(closeCtx); err != nil {
				s.log.Info("sequencer stopped without giving back its reserved positions: the next one skips them", "err", err)
			}
		}
		s.leading.Store(false)
		_ = conn.Close(closeCtx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("sequencer connection lost", "err", err)
		if time.Since(start) > time.Minute {
			b.reset()
		}
		b.sleep(ctx)
	}
}

func (s *Sequencer) session(ctx context.Context, conn SequencerConn) error {
	if err := conn.Lead(ctx); err != nil {
		return err
	}
	start, err := conn.BeginTerm(ctx)
	if err != nil {
		return err
	}
	// Listeners learn of a jump at once: a client that saw a position of a
	// batch a crash lost may resume with it.
	if err := s.announce(ctx, conn, start); err != nil {
		return err
	}
	s.leading.Store(true)
	s.log.Info("sequencer elected: this instance orders the event log")
	poll := s.cfg.MinPoll
	lastChange := time.Now()
	var lastPrune time.Time
	peek := true // an idle poll first checks cheaply whether changes wait
	var built []Record
	build := func(changes []Change) []Record {
		built = s.builder.Build(changes)
		return built
	}
	for {
		if time.Since(lastPrune) > s.cfg.PruneEvery && s.cfg.Retention > 0 {
			lastPrune = time.Now() // also under constant load: not only when idle
			if err := conn.Rotate(ctx, s.cfg.Retention); err != nil {
				if ctx.Err() != nil {
					return err
				}
				s.log.Warn("rotating the capture tables failed", "err", err)
			}
		}
		built = nil
		b, err := conn.Sequence(ctx, s.cfg.Batch, s.cfg.BatchBytes, peek, build)
		if err != nil {
			return err
		}
		n := b.Rows
		if b.Through > b.After {
			s.commit(built, b.After, b.Through) // positioned, committed: this instance first
			if err := s.announce(ctx, conn, b.Through); err != nil {
				return err
			}
		}

		if n >= s.cfg.Batch || b.More {
			peek = false
			continue
		}
		if n >= s.cfg.Busy {
			// Under load, rows arrive all the time; waiting a moment lets the next
			// batch carry many rows instead of a few, for a few ms of latency.
			poll, peek = s.cfg.MinPoll, false
			sleep(ctx, s.cfg.Gap)
			continue
		}
		// Going to sleep: writers may ring again. Changes a writer committed
		// while it could not ring are ticked now.
		pending, err := conn.Release(ctx)
		if err != nil {
			return err
		}
		if pending {
			peek = false
			continue
		}
		poll = s.nextPoll(poll, n > 0, &lastChange)
		rang, err := conn.Wait(ctx, poll)
		if err != nil {
			return err
		}
		peek = !rang // a ring means rows; a timeout may well mean none
	}
}

// nextPoll is the wait before the next look for changes: short right after a
// change (more may follow soon; a ring wakes the sequencer at once anyway),
// doubling up to MaxPoll while changes flow, and IdlePoll once none came for
// Warm.
func (s *Sequencer) nextPoll(poll time.Duration, changed bool, lastChange *time.Time) time.Duration {
	now := time.Now()
	switch {
	case changed:
		*lastChange = now
		return s.cfg.MinPoll
	case now.Sub(*lastChange) > s.cfg.Warm:
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

func (b *backoff) sleep(ctx context.Context) {
	if b.cur < b.min {
		b.cur = b.min
	}
	sleep(ctx, b.cur)
	if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
}
