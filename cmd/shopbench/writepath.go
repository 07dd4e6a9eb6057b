package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// writeReps is how many times each configuration runs; the report takes medians.
const writeReps = 3

var triggerNames = []string{"shopstream_capture_iud", "shopstream_capture_upd", "shopstream_capture_trunc"}

type pgbenchRun struct {
	Workload string
	Attached bool
	Stopped  bool // attached, with the server stopped: the trigger's own cost
	Baseline bool // the baseline's NOTIFY trigger with its relay running (baseline.go)
	TPS      float64
	Txns     int64
	WALBytes int64
	// ServiceCPU is the CPU seconds the running service used during an attached
	// run: the server process and its own PostgreSQL backends (sequencer,
	// listener, pool), which take their share of the writers' two cores.
	ServiceCPU float64
}

type writeResult struct {
	runs          []pgbenchRun
	seconds       int
	attachedAtEnd bool
}

const script1 = "\\set id random(1,10000)\nUPDATE orders SET version = version + 1 WHERE id = :id;\n"

func script5() string {
	var b strings.Builder
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&b, "\\set id%d random(1,10000)\n", i)
	}
	b.WriteString("BEGIN;\n")
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&b, "UPDATE orders SET version = version + 1 WHERE id = :id%d;\n", i)
	}
	b.WriteString("COMMIT;\n")
	return b.String()
}

func triggersAttached(ctx context.Context, db *pgx.Conn) bool {
	var n int
	_ = db.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.orders'::regclass AND tgname = ANY($1)`, triggerNames).Scan(&n)
	return n == len(triggerNames)
}

// writePath runs pgbench with the triggers detached, attached with the server
// stopped (the trigger's own cost; its changes are ticked afterwards),
// and attached with the server running. It restarts *srv after stopping it.
func writePath(ctx context.Context, o options, db *pgx.Conn, dbURL string, srv **server) (writeResult, error) {
	res := writeResult{seconds: o.pgbenchDur}
	pgbench := "pgbench"
	if bd := os.Getenv("PG_BINDIR"); bd != "" {
		pgbench = filepath.Join(bd, "pgbench")
	}
	dir, err := os.MkdirTemp("", "shopbench")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	_ = os.Chmod(dir, 0o755)
	scripts := map[string]string{"1 UPDATE per transaction": script1, "5 UPDATEs per transaction": script5()}
	order := []string{"1 UPDATE per transaction", "5 UPDATEs per transaction"}
	for _, wl := range order {
		path := filepath.Join(dir, strings.Fields(wl)[0]+".sql")
		if err := os.WriteFile(path, []byte(scripts[wl]), 0o644); err != nil {
			return res, err
		}
		for rep := 0; rep < writeReps; rep++ {
			for _, mode := range []struct{ attached, stopped, baseline bool }{{false, false, false}, {true, true, false}, {true, false, false}, {false, false, true}} {
				attached := mode.attached
				if err := setTriggers(ctx, o, db, dbURL, attached); err != nil {
					return res, err
				}
				var relay *server
				if mode.baseline {
					if relay, err = startBaseline(ctx, o, db, dbURL); err != nil {
						return res, err
					}
				}
				// let the sequencer drain what the last attached run left
				if err := waitInboxEmpty(ctx, db); err != nil {
					return res, err
				}
				if _, err := db.Exec(ctx, "VACUUM"); err != nil {
					return res, err
				}
				if _, err := db.Exec(ctx, "CHECKPOINT"); err != nil {
					return res, err
				}
				if mode.stopped {
					(*srv).stop()
				}
				var before, after string
				if err := db.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&before); err != nil {
					return res, err
				}
				var service []int // the running server and its backends
				if attached && !mode.stopped {
					service = servicePIDs(ctx, db, (*srv).pid)
				}
				cpu0 := sumCPU(service)
				cmd := exec.CommandContext(ctx, pgbench, "-n", "-c", "8", "-j", "2", "-T", strconv.Itoa(o.pgbenchDur), "-f", path, dbURL)
				out, err := cmd.CombinedOutput()
				serviceCPU := sumCPU(service) - cpu0
				if relay != nil {
					relay.stop()
					if berr := setBaseline(ctx, o, db, dbURL, false); berr != nil {
						return res, berr
					}
				}
				lsnErr := db.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&after)
				if mode.stopped {
					var serr error
					if *srv, serr = startServer(o.bin, dbURL); serr != nil {
						return res, fmt.Errorf("restarting the server: %w", serr)
					}
				}
				if err != nil {
					return res, fmt.Errorf("pgbench: %v\n%s", err, out)
				}
				if lsnErr != nil {
					return res, lsnErr
				}
				var wal int64
				_ = db.QueryRow(ctx, "SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint", after, before).Scan(&wal)
				r := pgbenchRun{Workload: wl, Attached: attached, Stopped: mode.stopped, Baseline: mode.baseline, WALBytes: wal, ServiceCPU: serviceCPU}
				r.TPS, r.Txns = parsePgbench(string(out))
				logf("  %s, %s: %.0f tps, %d txns, %d WAL bytes/txn", wl, r.label(), r.TPS, r.Txns, wal/max(r.Txns, 1))
				res.runs = append(res.runs, r)
			}
		}
	}
	return res, setTriggers(ctx, o, db, dbURL, true)
}

// servicePIDs returns the server's pid and those of its PostgreSQL backends
// (application_name shopstream...).
func servicePIDs(ctx context.Context, db *pgx.Conn, server int) []int {
	pids := []int{server}
	rows, err := db.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'shopstream%' AND pid <> pg_backend_pid()`)
	if err != nil {
		return pids
	}
	more, _ := pgx.CollectRows(rows, pgx.RowTo[int32])
	for _, p := range more {
		pids = append(pids, int(p))
	}
	return pids
}

func sumCPU(pids []int) float64 {
	var t float64
	for _, p := range pids {
		t += procCPU(p)
	}
	return t
}

func (r pgbenchRun) label() string {
	switch {
	case r.Baseline:
		return "baseline (pg_notify trigger, relay running)"
	case !r.Attached:
		return "detached"
	case r.Stopped:
		return "trigger only (server stopped)"
	}
	return "attached"
}

var (
	reTPS  = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	reTxns = regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)
)

func parsePgbench(out string) (float64, int64) {
	var tps float64
	var n int64
	if m := reTPS.FindStringSubmatch(out); m != nil {
		tps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reTxns.FindStringSubmatch(out); m != nil {
		n, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return tps, n
}

func setTriggers(ctx context.Context, o options, db *pgx.Conn, dbURL string, attached bool) error {
	if attached {
		if triggersAttached(ctx, db) {
			return nil
		}
		out, err := shopstreamCmd(o.bin, dbURL, "migrate")
		if err != nil {
			return fmt.Errorf("re-attaching triggers: %v\n%s", err, out)
		}
		if !triggersAttached(ctx, db) {
			return fmt.Errorf("migrate did not re-attach the triggers:\n%s", out)
		}
		return nil
	}
	for _, t := range triggerNames {
		if _, err := db.Exec(ctx, fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON public.orders", t)); err != nil {
			return err
		}
	}
	return nil
}

func waitInboxEmpty(ctx context.Context, db *pgx.Conn) error {
	for i := 0; i < 600; i++ {
		var n int64
		// Changes no tick holds yet (migrations/007_ticks.sql).
		if err := db.QueryRow(ctx, `SELECT count(*) FROM shopstream.changes c
			WHERE c.txid >= (SELECT pg_snapshot_xmax(snap) FROM shopstream.ticks ORDER BY first_position DESC LIMIT 1)
			   OR c.txid = ANY (ARRAY(SELECT pg_snapshot_xip(snap) FROM (SELECT snap FROM shopstream.ticks ORDER BY first_position DESC LIMIT 1) t))`).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		sleepMs(100)
	}
	return fmt.Errorf("changes not all ticked after 60 s")
}
