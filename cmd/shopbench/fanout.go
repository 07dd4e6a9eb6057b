package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/wire"
)

const numWriters = 8

// writers commit marker updates from their own connections and record when
// each COMMIT returned.
type writers struct {
	conns []*pgx.Conn // the writer connections (in the writer process)
	proc  *writerProc // in the parent: the writer process that runs the levels
	admin *pgx.Conn   // in the parent: a connection for the bench's own queries
	seq   atomic.Uint64

	mu      sync.Mutex
	base    uint64
	commits []int64 // commit time of marker base+i, 0 when not committed
	rtts    []time.Duration
	errs    atomic.Int64
	lastErr atomic.Value
}

// newWriters starts the writer process (see writerproc.go).
func newWriters(ctx context.Context, dbURL string) (*writers, error) {
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	proc, err := startWriterProc(dbURL)
	if err != nil {
		_ = admin.Close(ctx)
		return nil, err
	}
	return &writers{proc: proc, admin: admin}, nil
}

// newLocalWriters opens the writer connections in this process.
func newLocalWriters(ctx context.Context, dbURL string) (*writers, error) {
	w := &writers{}
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = "shopbench-writer"
	for i := 0; i < numWriters; i++ {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			w.close()
			return nil, err
		}
		w.conns = append(w.conns, c)
	}
	return w, nil
}

func (w *writers) close() {
	for _, c := range w.conns {
		_ = c.Close(context.Background())
	}
	if w.proc != nil {
		w.proc.close()
	}
	if w.admin != nil {
		_ = w.admin.Close(context.Background())
	}
}

// startLevel returns the first marker of the next level.
func (w *writers) startLevel() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.base = w.seq.Load() + 1
	w.commits = w.commits[:0]
	w.rtts = w.rtts[:0]
	w.errs.Store(0)
	return w.base
}

func (w *writers) record(seq uint64, at int64, rtt time.Duration) {
	w.mu.Lock()
	w.rtts = append(w.rtts, rtt)
	i := int(seq - w.base)
	for len(w.commits) <= i {
		w.commits = append(w.commits, 0)
	}
	w.commits[i] = at
	w.mu.Unlock()
}

// run offers rate events/s in total (0: as fast as they can) for d or until
// maxEvents markers were started.
func (w *writers) run(ctx context.Context, rate int, d time.Duration, maxEvents uint64) {
	if w.proc != nil {
		if err := w.proc.level(w, rate, d, maxEvents); err != nil {
			w.errs.Add(1)
			w.lastErr.Store(err.Error())
		}
		return
	}
	limit := w.base + maxEvents
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i, c := range w.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var interval time.Duration
			if rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(len(w.conns)) / float64(rate))
			}
			next := start.Add(time.Duration(i) * interval / time.Duration(len(w.conns)))
			for {
				if rate > 0 {
					if wait := time.Until(next); wait > 0 {
						time.Sleep(wait)
					}
					next = next.Add(interval)
				}
				if time.Now().After(end) {
					return
				}
				seq := w.seq.Add(1)
				if seq >= limit {
					return
				}
				t0 := now()
				_, err := c.Exec(ctx, "UPDATE public.orders SET notes = $1 WHERE id = $2", "k"+strconv.FormatUint(seq, 10)+runNonce, rand.IntN(10000)+1)
				at := now()
				if err != nil {
					w.errs.Add(1)
					w.lastErr.Store(err.Error())
					continue
				}
				w.record(seq, at, time.Duration(at-t0))
			}
		}()
	}
	wg.Wait()
}

type levelResult struct {
	Sockets     int
	Batch       bool
	Offered     int // 0: saturation
	Committed   int
	WriteErrs   int64
	WriteSecs   float64
	Achieved    float64 // events/s committed
	Expected    int64   // committed × sockets alive at the end
	Received    int64
	DeliverSecs float64 // level start to last marker arrival
	Delivered   float64 // messages/s
	Lat         summary
	Commit      summary // the writers' UPDATE+COMMIT round trips
	Lost        int
	Dups        int64
	OrderViol   int
	ClosedSlow  int64
	Reconnects  int64
	ClosedOther int64
	Drained     bool
	ServerCPU   float64
	ClientCPU   float64
	PGCPU       float64
	Wall        float64
	PeakRSSKiB  int64
	RSSKiB      int64
	Stages      []stageSummary // the server's per-step histograms over the level (none for the baseline)
}

type profileResult struct {
	Label string
	Top   string
	Err   string
}

func fanout(ctx context.Context, o options, srv *server, dbURL string) ([]levelResult, *profileResult, error) {
	var results []levelResult
	w, err := newWriters(ctx, dbURL)
	if err != nil {
		return nil, nil, err
	}
	defer w.close()
	postmaster := findPostmaster(ctx, w.admin)
	profileAt := 0 // socket count at which the saturation level is profiled
	for _, n := range o.sockets {
		if n <= 1000 {
			profileAt = n
		}
	}
	if profileAt == 0 && len(o.sockets) > 0 {
		profileAt = o.sockets[0]
	}
	var prof *profileResult
	// Start from a quiet server: what earlier scenarios wrote must be ticked.
	if err := waitInboxEmpty(ctx, w.admin); err != nil {
		return nil, nil, err
	}
	time.Sleep(2 * time.Second)
	fd0 := countFDs(srv.pid)
	for _, lv := range o.plan() {
		n := lv.sockets
		for _, batch := range []bool{false, true} {
			waitServerFDs(srv, fd0)
			p := newPool(ctx, srv, wire.Channel("order"), batch)
			t0 := time.Now()
			err := p.open(n, 100)
			if err != nil {
				p.close()
				return results, prof, err
			}
			logf("  %d sockets (batch=%v) open in %v", n, batch, time.Since(t0).Round(time.Millisecond))
			for _, rate := range lv.rates {
				var profDone chan *profileResult
				if rate == 0 && batch && n == profileAt && prof == nil {
					profDone = make(chan *profileResult, 1)
					secs := int(o.levelDur / time.Second)
					label := fmt.Sprintf("saturation level, %d sockets, %s, %d s", n, wire.BatchSubprotocol, secs)
					go func() { profDone <- captureProfile(srv, o.bin, secs, label) }()
				}
				r := runLevel(ctx, o, p, w, srv, postmaster, rate)
				results = append(results, r)
				logf("  sockets=%d batch=%v offered=%s achieved=%.0f ev/s delivered=%.0f msg/s commit-p50=%v p50=%v p99=%v max=%v lost=%d dup=%d slow-closed=%d other-closed=%d drained=%v srvCPU=%.1fs cliCPU=%.1fs pgCPU=%.1fs",
					n, batch, rateLabel(rate), r.Achieved, r.Delivered, r.Commit.P50, r.Lat.P50, r.Lat.P99, r.Lat.Max, r.Lost, r.Dups, r.ClosedSlow, r.ClosedOther, r.Drained, r.ServerCPU, r.ClientCPU, r.PGCPU)
				if len(r.Stages) > 0 {
					logf("  steps: %s", stagesLine(r.Stages))
				}
				if profDone != nil {
					prof = <-profDone
				}
				if v := w.lastErr.Load(); v != nil && r.WriteErrs > 0 {
					logf("  writer error: %v", v)
				}
				if v := p.lastErr.Load(); v != nil {
					logf("  socket error: %v", v)
				}
				if p.alive() == 0 {
					break
				}
			}
			p.close()
		}
	}
	return results, prof, nil
}

// baselineFanout runs the levels of one message per frame against the
// baseline (baseline.go): shopstream's triggers are swapped for the NOTIFY
// trigger and the relay serves the sockets, with the same writers and the same
// load client. shopstream's own triggers are back when it returns.
func baselineFanout(ctx context.Context, o options, dbURL string) (results []levelResult, err error) {
	w, err := newWriters(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer w.close()
	if err := waitInboxEmpty(ctx, w.admin); err != nil {
		return nil, err
	}
	relay, err := startBaseline(ctx, o, w.admin, dbURL)
	if err != nil {
		return nil, err
	}
	defer func() {
		relay.stop()
		if derr := setBaseline(ctx, o, w.admin, dbURL, false); derr != nil && err == nil {
			err = derr
		}
	}()
	postmaster := findPostmaster(ctx, w.admin)
	fd0 := countFDs(relay.pid)
	for _, lv := range o.plan() {
		n := lv.sockets
		waitServerFDs(relay, fd0)
		p := newPool(ctx, relay, wire.Channel("order"), false)
		if err := p.open(n, 100); err != nil {
			p.close()
			return results, err
		}
		for _, rate := range lv.rates {
			r := runLevel(ctx, o, p, w, relay, postmaster, rate)
			results = append(results, r)
			logf("  baseline sockets=%d offered=%s achieved=%.0f ev/s delivered=%.0f msg/s p50=%v p99=%v max=%v lost=%d dup=%d dropped=%d srvCPU=%.1fs pgCPU=%.1fs",
				n, rateLabel(rate), r.Achieved, r.Delivered, r.Lat.P50, r.Lat.P99, r.Lat.Max, r.Lost, r.Dups, r.ClosedSlow+r.ClosedOther, r.ServerCPU, r.PGCPU)
			if v := w.lastErr.Load(); v != nil && r.WriteErrs > 0 {
				logf("  writer error: %v", v)
			}
			if p.alive() == 0 {
				break
			}
		}
		p.close()
	}
	return results, nil
}

// socketLevel is one socket count and the rates offered to it.
type socketLevel struct {
	sockets int
	rates   []int
}

// plan is the fan-out levels: every rate at every socket count, and (full runs)
// 5,000 sockets at 10 events/s, a point of the peers' comparison.
func (o options) plan() []socketLevel {
	var out []socketLevel
	for _, n := range o.sockets {
		out = append(out, socketLevel{n, o.rates})
	}
	if !o.quick && !o.customLevels {
		out = append(out, socketLevel{5000, []int{10}})
	}
	return out
}

func rateLabel(rate int) string {
	if rate == 0 {
		return "saturation"
	}
	return strconv.Itoa(rate)
}

func runLevel(ctx context.Context, o options, p *pool, w *writers, srv *server, postmaster int, rate int) levelResult {
	r := levelResult{Sockets: len(p.socks), Batch: p.batch, Offered: rate}
	base := w.startLevel()
	p.resetLevel(base)
	slow0, rec0, other0 := p.closedSlow.Load(), p.reconnects.Load(), p.closedOther.Load()
	stages0 := scrapeStages(srv)
	srv0, cli0, pg0 := procCPU(srv.pid), procCPU(os.Getpid()), pgCPU(postmaster)
	start := now()
	t0 := time.Now()
	// Bound the messages a level asks for (events × sockets), so that a level
	// the machine cannot keep up with ends in bounded time.
	budget := o.msgBudget
	if p.batch {
		budget *= 2
	}
	maxEvents := uint64(max(budget/len(p.socks), 50))
	w.run(ctx, rate, o.levelDur, maxEvents)
	r.WriteSecs = time.Since(t0).Seconds()
	w.mu.Lock()
	commits := append([]int64(nil), w.commits...)
	r.Commit = summarize(append([]time.Duration(nil), w.rtts...))
	w.mu.Unlock()
	for _, c := range commits {
		if c != 0 {
			r.Committed++
		}
	}
	r.WriteErrs = w.errs.Load()
	r.Achieved = float64(r.Committed) / r.WriteSecs

	// Drain: until every live socket has every committed marker, or no
	// progress for 5 s, or 60 s.
	lastRecv, lastProgress := int64(-1), time.Now()
	deadline := time.Now().Add(90 * time.Second)
	for {
		// Count per live socket: receipts of sockets that died must not make up
		// for markers a live socket still lacks.
		got := p.recv.Load()
		if p.pending(int64(r.Committed)) == 0 {
			r.Drained = true
			break
		}
		if got != lastRecv {
			lastRecv, lastProgress = got, time.Now()
		}
		if time.Since(lastProgress) > 5*time.Second || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !r.Drained {
		// Name what the first socket lacks (the first ten), so that a loss can
		// be traced in the event log by its marker.
		s0 := p.socks[0]
		s0.mu.Lock()
		shown := 0
		for i, c := range commits {
			if c != 0 && !s0.tr.has(base+uint64(i)) && shown < 10 {
				logf("  socket 0 lacks marker k%d%s (committed %v into the level)", base+uint64(i), runNonce, time.Duration(c-start))
				shown++
			}
		}
		s0.mu.Unlock()
	}
	r.Wall = time.Since(t0).Seconds()
	r.ServerCPU = procCPU(srv.pid) - srv0
	r.Stages = stagesBetween(stages0, scrapeStages(srv))
	r.ClientCPU = procCPU(os.Getpid()) - cli0
	if postmaster != 0 {
		r.PGCPU = pgCPU(postmaster) - pg0
	}
	r.PeakRSSKiB = procStatusKiB(srv.pid, "VmHWM")
	r.RSSKiB = procStatusKiB(srv.pid, "VmRSS")
	r.Received = p.recv.Load()
	r.Dups = p.dups.Load()
	r.ClosedSlow = p.closedSlow.Load() - slow0
	r.Reconnects = p.reconnects.Load() - rec0
	r.ClosedOther = p.closedOther.Load() - other0
	if last := p.lastArrival.Load(); last > start {
		r.DeliverSecs = float64(last-start) / 1e9
		r.Delivered = float64(r.Received) / r.DeliverSecs
	}
	var lat []time.Duration
	for _, s := range p.socks {
		s.mu.Lock()
		if !s.dead {
			r.Expected += int64(r.Committed)
			r.Lost += s.tr.missing(commits)
		}
		r.OrderViol += s.orderViol
		s.orderViol = 0
		if s.sample {
			lat = latencies(base, commits, s.arr, lat)
		}
		s.mu.Unlock()
	}
	r.Lat = summarize(lat)
	return r
}

func captureProfile(srv *server, bin string, secs int, label string) *profileResult {
	pr := &profileResult{Label: label}
	if secs < 1 {
		secs = 1
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", srv.debug, secs))
	if err != nil {
		pr.Err = err.Error()
		return pr
	}
	defer resp.Body.Close()
	dir, _ := os.MkdirTemp("", "shopbench-prof")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "cpu.pprof")
	f, err := os.Create(path)
	if err != nil {
		pr.Err = err.Error()
		return pr
	}
	_, err = io.Copy(f, resp.Body)
	f.Close()
	if err != nil {
		pr.Err = err.Error()
		return pr
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=15", bin, path).CombinedOutput()
	pr.Top = string(out)
	if err != nil {
		pr.Err = err.Error()
	}
	return pr
}

func sleepMs(ms int) { time.Sleep(time.Duration(ms) * time.Millisecond) }

func countFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

// waitServerFDs waits (up to 60 s) until the server has released the sockets
// of the previous pool, so that two pools never need the server's descriptors at once.
func waitServerFDs(srv *server, base int) {
	t0 := time.Now()
	for time.Since(t0) < 30*time.Second {
		if n := countFDs(srv.pid); n <= base+50 {
			if d := time.Since(t0); d > time.Second {
				logf("  server released the previous sockets after %v", d.Round(100*time.Millisecond))
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	logf("  server still holds %d descriptors (%d before the first pool) after 30 s", countFDs(srv.pid), base)
}
