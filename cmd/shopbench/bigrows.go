package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/wire"
)

// bigRowsResult is scenario 5: updates of 1 MiB rows streamed to sockets,
// and the server's peak memory while it does.
type bigRowsResult struct {
	Rows, Updates, Sockets int
	RowBytes               int
	MaxEventBytes          int
	StartRSSKiB, PeakKiB   int64 // VmRSS after start; VmHWM (peak RSS) at the end
	Received               int64 // events received, all sockets
	Markers                int64 // of them too_large markers
	Secs                   float64

	// Serialisation cost of one row in the trigger, µs: row_to_json as it is,
	// and shopstream.row_json (SECURITY DEFINER, settings pinned).
	PlainUS, PinnedUS float64
}

const bigRowMaxEvent = 4 << 20

func bigRows(ctx context.Context, o options, dbURL string, db *pgx.Conn) (bigRowsResult, error) {
	r := bigRowsResult{Rows: 100, Updates: 1000, Sockets: 10, RowBytes: 1 << 20, MaxEventBytes: bigRowMaxEvent}
	if o.quick {
		r.Updates = 200
	}
	var err error
	if r.PlainUS, r.PinnedUS, err = serialisationCost(ctx, db); err != nil {
		return r, err
	}
	logf("  row serialisation: row_to_json %.2f µs, shopstream.row_json (settings pinned) %.2f µs per row", r.PlainUS, r.PinnedUS)
	for _, sql := range []string{
		`ALTER TABLE public.products ADD COLUMN IF NOT EXISTS blob text`,
		`DELETE FROM public.products WHERE sku LIKE 'BIG-%'`,
		fmt.Sprintf(`INSERT INTO public.products (sku, name, price, stock, blob)
			SELECT 'BIG-' || g, 'Big product ' || g, 1, 0, repeat(md5(g::text), %d) FROM generate_series(1, %d) g`, r.RowBytes/32, r.Rows),
	} {
		if _, err := db.Exec(ctx, sql); err != nil {
			return r, fmt.Errorf("%s: %w", strings.Fields(sql)[0], err)
		}
	}
	// A fresh server, alone on the database (the instance that orders the log
	// applies its own limits), so that its peak RSS is this scenario's; events
	// up to 4 MiB are sent whole, so the 1 MiB rows travel as they are.
	srv, err := startServer(o.bin, dbURL, fmt.Sprintf("MAX_EVENT_BYTES=%d", bigRowMaxEvent))
	if err != nil {
		return r, err
	}
	defer srv.stop()
	r.StartRSSKiB = settledRSS(srv.pid)
	p := newPool(ctx, srv, wire.Channel("product"), true)
	defer p.close()
	if err := p.open(r.Sockets, 0); err != nil {
		return r, err
	}
	var received, markers atomic.Int64
	for _, s := range p.socks {
		s.mu.Lock()
		s.onEvent = func(m []byte, _ int64) { // only the updates below write products now
			received.Add(1)
			if bytes.Contains(m, []byte(`"too_large":`)) {
				markers.Add(1)
			}
		}
		s.mu.Unlock()
	}
	t0 := time.Now()
	for i := 0; i < r.Updates; i++ {
		if _, err := db.Exec(ctx, `UPDATE public.products SET stock = stock + 1 WHERE sku = $1`, fmt.Sprintf("BIG-%d", i%r.Rows+1)); err != nil {
			return r, err
		}
	}
	want := int64(r.Updates * r.Sockets)
	deadline := time.Now().Add(10 * time.Minute)
	for received.Load() < want && time.Now().Before(deadline) && p.alive() == r.Sockets {
		time.Sleep(50 * time.Millisecond)
	}
	r.Secs = time.Since(t0).Seconds()
	r.Received, r.Markers = received.Load(), markers.Load()
	r.PeakKiB = procStatusKiB(srv.pid, "VmHWM")
	logf("  %d updates of %d rows of 1 MiB to %d sockets: %d events (%d markers) in %.1f s; server RSS %d KiB at start, peak %d KiB",
		r.Updates, r.Rows, r.Sockets, r.Received, r.Markers, r.Secs, r.StartRSSKiB, r.PeakKiB)
	if _, err := db.Exec(ctx, `DELETE FROM public.products WHERE sku LIKE 'BIG-%'`); err != nil {
		return r, err
	}
	if r.Received < want {
		return r, fmt.Errorf("only %d of %d events arrived (%d sockets alive)", r.Received, want, p.alive())
	}
	return r, nil
}

// serialisationCost times turning 200,000 rows into JSON as the trigger did
// before migration 4 (row_to_json, in the writer's session settings) and as
// it does now (shopstream.row_json: SECURITY DEFINER, settings pinned), in µs
// per row: the part of the write path the fix costs.
func serialisationCost(ctx context.Context, db *pgx.Conn) (plain, pinned float64, err error) {
	const n = 200000
	run := func(expr string) (float64, error) {
		best := 0.0
		for try := 0; try < 3; try++ {
			t0 := time.Now()
			if _, err := db.Exec(ctx, fmt.Sprintf(`SELECT count(%s) FROM (SELECT g AS id, 'sku-' || g AS sku, now() AS at, g * 0.1 AS price FROM generate_series(1, %d) g) t`, expr, n)); err != nil {
				return 0, err
			}
			if us := float64(time.Since(t0).Microseconds()) / n; try == 0 || us < best {
				best = us
			}
		}
		return best, nil
	}
	if plain, err = run("row_to_json(t)"); err != nil {
		return 0, 0, err
	}
	pinned, err = run("shopstream.row_json(t)")
	return plain, pinned, err
}
