package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/wire"
)

type idleResult struct {
	Sockets      int
	RSS0KiB      int64
	RSS1KiB      int64
	PerSocketKiB float64
	OpenSecs     float64
	FDsBefore    int // server descriptors before the sockets opened
	FDsOpen      int // with the sockets open
	FDsAfter     int // 10 s after the clients dropped them without a close handshake
	// The quiet service, before any socket: what it asks of PostgreSQL and
	// how much CPU it and PostgreSQL use over QuietSecs.
	QuietSecs    float64
	QueriesPerS  float64 // transactions of the service's database per second, autovacuum's runs not counted
	Maintenance  int64   // autovacuum's runs on the database's tables meanwhile
	ServerCPUPct float64 // of one core
	PGCPUPct     float64 // the whole PostgreSQL server, of one core
	// With the sockets open: the server's goroutines and the top of its heap
	// profile (in-use bytes, after a collection).
	Goroutines int
	MemStats   string // the runtime's figures as measured: heap and stacks in use, the GC goal
	Heap       *profileResult
}

// quietWindow is how long the quiet service is watched, after it has had
// quietSettle to stop polling fast (the sequencer stays warm 10 s after
// the last change). A minute, as the target is worded: an idle backend
// reports its transactions to the statistics up to 10 s late, so a shorter
// window counts a few more or fewer than ran in it (30 s read 0.83 and 1.07
// queries/s of the same code).
const quietSettle, quietWindow = 15 * time.Second, 60 * time.Second

// dbTransactions is the database's committed and rolled-back transactions so
// far (PostgreSQL's statistics: every statement outside a transaction block is
// one; a backend reports them when it goes idle, up to 10 s later).
func dbTransactions(ctx context.Context, db *pgx.Conn) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&n)
	return n, err
}

// maintenanceRuns is how many times autovacuum has vacuumed or analyzed a
// table of the database so far: PostgreSQL's own transactions, which
// pg_stat_database counts with the service's (-1 when unreadable).
func maintenanceRuns(ctx context.Context, db *pgx.Conn) int64 {
	var n int64
	if err := db.QueryRow(ctx, `SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_all_tables`).Scan(&n); err != nil {
		return -1
	}
	return n
}

// quiet watches the service with nothing to do.
func quiet(ctx context.Context, r *idleResult, srv *server, db *pgx.Conn) error {
	postmaster := findPostmaster(ctx, db)
	time.Sleep(quietSettle)
	n0, err := dbTransactions(ctx, db)
	if err != nil {
		return fmt.Errorf("reading database statistics: %w", err)
	}
	m0 := maintenanceRuns(ctx, db)
	c0, p0, t0 := procCPU(srv.pid), pgCPU(postmaster), time.Now()
	time.Sleep(quietWindow)
	n1, err := dbTransactions(ctx, db)
	if err != nil {
		return fmt.Errorf("reading database statistics: %w", err)
	}
	r.Maintenance = maintenanceRuns(ctx, db) - m0
	c1, p1 := procCPU(srv.pid), pgCPU(postmaster)
	r.QuietSecs = time.Since(t0).Seconds()
	// Less the first reading itself and autovacuum's runs (each at least one
	// transaction of its own; a worker's visit has a few more, still counted).
	r.QueriesPerS = float64(n1-n0-1-max(r.Maintenance, 0)) / r.QuietSecs
	r.ServerCPUPct = 100 * (c1 - c0) / r.QuietSecs
	r.PGCPUPct = 100 * (p1 - p0) / r.QuietSecs
	logf("  quiet: %.2f queries/s, server %.2f %% of a core, PostgreSQL %.2f %% over %.0f s; autovacuum ran %d times meanwhile", r.QueriesPerS, r.ServerCPUPct, r.PGCPUPct, r.QuietSecs, r.Maintenance)
	return nil
}

// settledRSS polls VmRSS until two successive readings 250 ms apart differ by
// less than 1%, or 5 s.
func settledRSS(pid int) int64 {
	deadline := time.Now().Add(5 * time.Second)
	prev := procStatusKiB(pid, "VmRSS")
	stable := 0
	for time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		cur := procStatusKiB(pid, "VmRSS")
		d := cur - prev
		if d < 0 {
			d = -d
		}
		if float64(d) < 0.01*float64(prev) {
			stable++
			if stable >= 2 {
				return cur
			}
		} else {
			stable = 0
		}
		prev = cur
	}
	return prev
}

func idleMemory(ctx context.Context, o options, srv *server, db *pgx.Conn) (idleResult, error) {
	r := idleResult{Sockets: o.idleSocks}
	if err := quiet(ctx, &r, srv, db); err != nil {
		return r, err
	}
	r.RSS0KiB = settledRSS(srv.pid)
	r.FDsBefore = countFDs(srv.pid)
	p := newPool(ctx, srv, wire.Channel("order"), false)
	t0 := time.Now()
	if err := p.open(o.idleSocks, 0); err != nil {
		p.close()
		return r, err
	}
	r.OpenSecs = time.Since(t0).Seconds()
	r.RSS1KiB = settledRSS(srv.pid)
	r.PerSocketKiB = float64(r.RSS1KiB-r.RSS0KiB) / float64(o.idleSocks)
	logf("  RSS %d KiB at 0 sockets, %d KiB at %d sockets: %.1f KiB per socket", r.RSS0KiB, r.RSS1KiB, o.idleSocks, r.PerSocketKiB)
	r.Goroutines = countGoroutines(srv)
	r.MemStats = memStats(srv)
	r.Heap = captureHeap(srv, o.bin)
	logf("  %d goroutines with the sockets open; %s; heap in use:\n%s", r.Goroutines, r.MemStats, r.Heap.Top)
	// Then drop them all without a close handshake and see whether the server lets go.
	r.FDsOpen = countFDs(srv.pid)
	p.abort()
	time.Sleep(10 * time.Second)
	r.FDsAfter = countFDs(srv.pid)
	logf("  server descriptors: %d before, %d open, %d 10 s after the clients dropped the sockets", r.FDsBefore, r.FDsOpen, r.FDsAfter)
	return r, nil
}

type bulkResult struct {
	Rows          int
	InsertSecs    float64 // INSERT statement
	InsertDeliver float64 // INSERT commit to last created event
	UpdateSecs    float64 // UPDATE statement
	CommitToLast  float64 // UPDATE commit to last updated event
	Created       int
	Updated       int
	Pings         int
	Pongs         int
	PingP99       time.Duration
	PingMax       time.Duration
	ClosedSlow    int64
	Reconnects    int64
}

func bulk(ctx context.Context, o options, srv *server, db *pgx.Conn) (bulkResult, error) {
	r := bulkResult{Rows: o.bulkRows}
	p := newPool(ctx, srv, wire.Channel("product"), true)
	defer p.close()
	if err := p.open(1, 0); err != nil {
		return r, err
	}
	s := p.socks[0]
	var mu sync.Mutex
	var lastCreated, lastUpdated int64
	s.mu.Lock()
	s.onEvent = func(m []byte, at int64) {
		name := eventName(m)
		if !bytes.Contains(m, []byte(`"sku":"BULK-`)) {
			return
		}
		mu.Lock()
		switch string(name) {
		case "product:created":
			r.Created++
			lastCreated = at
		case "product:updated":
			r.Updated++
			lastUpdated = at
		}
		mu.Unlock()
	}
	s.mu.Unlock()
	count := func() (int, int) { mu.Lock(); defer mu.Unlock(); return r.Created, r.Updated }
	wait := func(cond func() bool, limit time.Duration) bool {
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(5 * time.Millisecond)
		}
		return true
	}

	if _, err := db.Exec(ctx, "DELETE FROM public.products WHERE sku LIKE 'BULK-%'"); err != nil {
		return r, err
	}
	t0 := time.Now()
	if _, err := db.Exec(ctx, `INSERT INTO public.products (sku, name, price, stock)
		SELECT 'BULK-' || g, 'Bulk product ' || g, 9.99, 0 FROM generate_series(1, $1::int) g`, o.bulkRows); err != nil {
		return r, err
	}
	insCommit := now()
	r.InsertSecs = time.Since(t0).Seconds()
	if !wait(func() bool { c, _ := count(); return c >= o.bulkRows }, 180*time.Second) {
		c, _ := count()
		return r, fmt.Errorf("only %d of %d created events arrived", c, o.bulkRows)
	}
	mu.Lock()
	r.InsertDeliver = float64(lastCreated-insCommit) / 1e9
	mu.Unlock()
	logf("  INSERT %d rows: statement %.2fs, commit to last event %.2fs", o.bulkRows, r.InsertSecs, r.InsertDeliver)

	// Ping every 100 ms from before the UPDATE until its last event arrived.
	pctx, stopPing := context.WithCancel(ctx)
	var rtts []time.Duration
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var sent []int64
		for {
			select {
			case <-pctx.Done():
				// collect late pongs for up to 2 s
				deadline := time.After(2 * time.Second)
				for len(sent) > 0 {
					select {
					case at := <-s.pong:
						rtts = append(rtts, time.Duration(at-sent[0]))
						sent = sent[1:]
					case <-deadline:
						return
					}
				}
				return
			case at := <-s.pong:
				if len(sent) > 0 {
					rtts = append(rtts, time.Duration(at-sent[0]))
					sent = sent[1:]
				}
			case <-tick.C:
				sent = append(sent, now())
				r.Pings++
				if err := s.send(pctx, `{"type":"`+wire.TypePing+`"}`); err != nil {
					sent = sent[:len(sent)-1]
					r.Pings--
				}
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	t0 = time.Now()
	tag, err := db.Exec(ctx, "UPDATE public.products SET stock = stock + 1 WHERE sku LIKE 'BULK-%'")
	updCommit := now()
	r.UpdateSecs = time.Since(t0).Seconds()
	if err != nil {
		stopPing()
		<-pingDone
		return r, err
	}
	ok := wait(func() bool { _, u := count(); return u >= int(tag.RowsAffected()) }, 300*time.Second)
	time.Sleep(200 * time.Millisecond)
	stopPing()
	<-pingDone
	mu.Lock()
	r.CommitToLast = float64(lastUpdated-updCommit) / 1e9
	mu.Unlock()
	r.Pongs = len(rtts)
	ps := summarize(rtts)
	r.PingP99, r.PingMax = ps.P99, ps.Max
	r.ClosedSlow, r.Reconnects = p.closedSlow.Load(), p.reconnects.Load()
	logf("  UPDATE %d rows: statement %.2fs, commit to last event %.2fs, ping p99 %v max %v (%d/%d pongs), 1013 closes %d",
		tag.RowsAffected(), r.UpdateSecs, r.CommitToLast, r.PingP99, r.PingMax, r.Pongs, r.Pings, r.ClosedSlow)
	if !ok {
		_, u := count()
		return r, fmt.Errorf("only %d of %d updated events arrived", u, tag.RowsAffected())
	}
	return r, nil
}

// countGoroutines reads the server's goroutine count from its pprof endpoint
// (0 when it cannot).
func countGoroutines(srv *server) int {
	resp, err := http.Get("http://" + srv.debug + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var n int
	_, _ = fmt.Fscanf(resp.Body, "goroutine profile: total %d", &n)
	return n
}

// memStats reads a few of the server's runtime.MemStats, in MiB (the text
// heap profile ends with them).
func memStats(srv *server) string {
	resp, err := http.Get("http://" + srv.debug + "/debug/pprof/heap?debug=1")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		var name string
		var v int64
		if n, _ := fmt.Sscanf(line, "# %s = %d", &name, &v); n != 2 {
			continue
		}
		switch name {
		case "HeapAlloc", "HeapInuse", "HeapIdle", "HeapReleased", "Stack", "NextGC", "Sys":
			out = append(out, fmt.Sprintf("%s %.1f MiB", name, float64(v)/(1<<20)))
		}
	}
	return strings.Join(out, ", ")
}

// captureHeap reads the server's heap profile (after a collection) and keeps
// the top of its in-use bytes.
func captureHeap(srv *server, bin string) *profileResult {
	pr := &profileResult{Label: "heap in use, after a collection"}
	resp, err := http.Get("http://" + srv.debug + "/debug/pprof/heap?gc=1")
	if err != nil {
		pr.Err = err.Error()
		return pr
	}
	defer resp.Body.Close()
	// Kept for a closer look: go tool pprof -list ... .bin/shopstream <path>
	path := filepath.Join(os.TempDir(), "shopbench-idle-heap.pprof")
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		pr.Err = err.Error()
		return pr
	}
	out, err := exec.Command("go", "tool", "pprof", "-sample_index=inuse_space", "-top", "-nodecount=12", bin, path).CombinedOutput()
	pr.Top = string(out)
	logf("  heap profile kept in %s", path)
	if err != nil {
		pr.Err = err.Error()
	}
	return pr
}
