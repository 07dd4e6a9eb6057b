package main

// Fault-injection tests: the database connection of the listener and of the
// sequencer killed, PostgreSQL restarted, the server killed with SIGKILL and
// restarted, a long open transaction holding the doorbell, and shutdown. Each
// counts every committed change (one row's version incremented by writers) and
// asserts the exact sequence the socket delivers: versions 1, 2, 3, ... exactly
// once each, in order, with increasing event ids.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/pgcluster"
	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// sequencerLock is the session advisory lock the elected sequencer holds
// (internal/postgres: sequencerLockKey).
const sequencerLock int64 = 7316042871525064

// nextMessage reads one message (waiting up to waitfor.Deadline) without
// failing the test: err is the socket's error (a websocket.CloseError when it
// was closed with a close frame).
func nextMessage(w *wsClient) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	typ, b, err := w.conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	w.checks.add(typ, b)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("socket sent invalid JSON %q: %w", b, err)
	}
	return m, nil
}

// subscribeSince subscribes to channel resuming after since and returns the
// position of "subscribed".
func subscribeSince(t *testing.T, w *wsClient, channel string, since int64) string {
	t.Helper()
	w.send(map[string]any{"type": "subscribe", "channel": channel, "since": strconv.FormatInt(since, 10)})
	m := w.read()
	if m["type"] != "subscribed" || m["channel"] != channel {
		t.Fatalf("want subscribed to %s, got %v", channel, m)
	}
	return m["position"].(string)
}

// versionSeq is the sequence a socket must deliver: order:updated events whose
// changed_fields.version is, per row, next[row], next[row]+1, ... and whose ids
// increase across rows.
type versionSeq struct {
	next   map[int64]int // row id -> next version expected
	lastID int64         // id of the last event accepted
	count  int           // events accepted
}

func newVersionSeq(rows ...int64) *versionSeq {
	v := &versionSeq{next: map[int64]int{}}
	for _, r := range rows {
		v.next[r] = 1
	}
	return v
}

// accept checks one message against the sequence.
func (v *versionSeq) accept(m map[string]any) error {
	if m["type"] != "event" || m["event"] != "order:updated" || m["channel"] != "order_changes" {
		return fmt.Errorf("after %d events (last id %d): want an order:updated event, got %v", v.count, v.lastID, m)
	}
	data, _ := m["data"].(map[string]any)
	rowF, _ := data["id"].(float64)
	row := int64(rowF)
	want, ok := v.next[row]
	if !ok {
		return fmt.Errorf("event for unexpected row %v: %v", data["id"], m)
	}
	changed, _ := data["changed_fields"].(map[string]any)
	if got := changed["version"]; got != float64(want) {
		return fmt.Errorf("row %d: want version %d, got %v (id %v; %d events accepted, last id %d)", row, want, got, m["id"], v.count, v.lastID)
	}
	id, err := strconv.ParseInt(fmt.Sprint(m["id"]), 10, 64)
	if err != nil || id <= v.lastID {
		return fmt.Errorf("row %d version %d: id %v not above the previous id %d", row, want, m["id"], v.lastID)
	}
	v.next[row] = want + 1
	v.lastID = id
	v.count++
	return nil
}

// readUntil reads events from w until the sequence has accepted total events.
// It returns the socket's error if the socket ends first; a wrong event fails
// the test.
func (v *versionSeq) readUntil(t *testing.T, w *wsClient, total int) error {
	t.Helper()
	for v.count < total {
		m, err := nextMessage(w)
		if err != nil {
			return err
		}
		if err := v.accept(m); err != nil {
			t.Fatal(err)
		}
	}
	return nil
}

// newOrder inserts an order while ws is subscribed to order_changes and reads
// its created event, so that nothing of it is pending afterwards.
func newOrder(t *testing.T, app *pgx.Conn, ws *wsClient, number string) int64 {
	t.Helper()
	var id int64
	if err := app.QueryRow(context.Background(), `INSERT INTO orders (order_number) VALUES ($1) RETURNING id`, number).Scan(&id); err != nil {
		t.Fatal(err)
	}
	m := ws.read()
	data, _ := m["data"].(map[string]any)
	if m["event"] != "order:created" || data["order_number"] != number {
		t.Fatalf("want order:created of %s, got %v", number, m)
	}
	return id
}

// waitLog polls the server log until it contains substr.
func waitLog(t *testing.T, log *lockedBuffer, substr string) {
	t.Helper()
	if err := waitfor.UntilContext(context.Background(), func() bool { return strings.Contains(log.String(), substr) }); err != nil {
		t.Fatalf("server log has no %q after %v:\n%s", substr, waitfor.Deadline, log.String())
	}
}

// killBackends terminates the server's dedicated connections (application_name
// shopstream-listener) of the current database: which is "listener" (the one not
// holding the sequencer lock), "sequencer" (the lock holder) or "both". It
// returns how many backends it terminated.
func killBackends(t *testing.T, admin *pgx.Conn, which string) int {
	t.Helper()
	ctx := waitfor.Context(t)
	const seqPids = `SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1
		AND a.datname = current_database() AND a.application_name = 'shopstream-listener'`
	args := []any{sequencerLock >> 32, sequencerLock & 0xffffffff}
	var sql string
	switch which {
	case "listener":
		sql = `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = 'shopstream-listener' AND datname = current_database() AND pid NOT IN (` + seqPids + `)`
	case "sequencer":
		sql = `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM (` + seqPids + `) s`
	default:
		sql, args = `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = 'shopstream-listener' AND datname = current_database()`, nil
	}
	var n int
	if err := admin.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("terminating %s backends: %v", which, err)
	}
	return n
}

// TestListenerConnectionKilled kills the listener's backend, the sequencer's, or
// both, while a writer commits 300 increments of one row: the socket still
// receives versions 1..300 in order, each once.
func TestListenerConnectionKilled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		which string
		want  int      // backends terminated
		logs  []string // what the server logs when it notices
		not   string   // what it must not log: the other connection stayed up
	}{
		{"listener", 1, []string{"listener connection lost", "listener reconnected"}, "sequencer connection lost"},
		{"sequencer", 1, []string{"sequencer connection lost"}, "listener connection lost"},
		{"both", 2, []string{"listener connection lost", "listener reconnected", "sequencer connection lost"}, ""},
	} {
		t.Run(tc.which, func(t *testing.T) {
			t.Parallel()
			s, _, ws := setup(t, nil)
			ws.subscribe("order_changes")
			app := appConn(t, s.DBURL, "writer")
			admin := appConn(t, s.DBURL, "fault-injector")
			id := newOrder(t, app, ws, "ORD-KILL-"+tc.which)
			// The sequencer must be elected before its backend can be found by its lock.
			waitLog(t, s.Log, "sequencer elected")

			const total, half = 300, 150
			halfway, killed := make(chan struct{}), make(chan struct{})
			werr := make(chan error, 1)
			go func() {
				for i := 1; i <= total; i++ {
					if i == half+1 {
						close(halfway)
						select {
						case <-killed:
						case <-time.After(waitfor.Deadline):
							werr <- errors.New("writer: no kill signal")
							return
						}
					}
					if _, err := app.Exec(context.Background(), `UPDATE orders SET version = version + 1 WHERE id = $1`, id); err != nil {
						werr <- fmt.Errorf("writer at %d: %w", i, err)
						return
					}
				}
				werr <- nil
			}()
			seq := newVersionSeq(id)
			start := time.Now()
			waitfor.Receive(t, "the writer's first half", halfway)
			n := killBackends(t, admin, tc.which)
			close(killed)
			if n != tc.want {
				t.Errorf("terminated %d backends, want %d", n, tc.want)
			}
			if err := seq.readUntil(t, ws, total); err != nil {
				t.Fatalf("socket ended after %d events: %v\n%s", seq.count, err, s.Log.String())
			}
			if err := waitfor.Receive(t, "the writer", werr); err != nil {
				t.Fatal(err)
			}
			for _, l := range tc.logs {
				waitLog(t, s.Log, l)
			}
			if tc.not != "" && strings.Contains(s.Log.String(), tc.not) {
				t.Errorf("server logged %q: the kill was not targeted\n%s", tc.not, s.Log.String())
			}
			if n := strings.Count(s.Log.String(), "sequencer elected"); tc.which != "listener" && n != 2 {
				t.Errorf("sequencer elected %d times, want 2 (before and after the kill)", n)
			}
			t.Logf("kill %s: %d versions delivered in %v", tc.which, seq.count, time.Since(start).Round(time.Millisecond))
			expectQuiet(t, ws, s.DBURL)
		})
	}
}

// expectQuiet checks that nothing follows the last version (no duplicate, no
// stray event): a new order committed now, which travels the whole road
// (trigger, inbox, sequencer, log, listener, hub), must be the next message.
func expectQuiet(t *testing.T, ws *wsClient, dbURL string) {
	t.Helper()
	app := appConn(t, dbURL, "end-marker")
	num := fmt.Sprintf("ORD-END-%d", time.Now().UnixNano())
	exec(t, app, `INSERT INTO orders (order_number) VALUES ($1)`, num)
	m := ws.read()
	data, _ := m["data"].(map[string]any)
	if m["event"] != "order:created" || data["order_number"] != num {
		t.Fatalf("want only the end marker %s after the last version, got %v", num, m)
	}
}

// retryWriter increments one row's version until target versions are
// committed, surviving the database going away: after an error it reconnects
// and reads the current version, so that it counts only committed increments.
type retryWriter struct {
	url       string
	id        int64
	committed atomic.Int64
	uncertain int // statements whose outcome had to be read back
	failures  int // failed statements and connection attempts
}

func (w *retryWriter) run(ctx context.Context, target int64, halfway chan<- struct{}) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	signalled := false
	for w.committed.Load() < target {
		if ctx.Err() != nil {
			return fmt.Errorf("writer gave up at version %d (%d failures): %w", w.committed.Load(), w.failures, ctx.Err())
		}
		if conn == nil {
			cfg, err := pgx.ParseConfig(w.url)
			if err != nil {
				return err
			}
			cfg.RuntimeParams["application_name"] = "writer"
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := pgx.ConnectConfig(cctx, cfg)
			if err == nil {
				var v int64
				if err = c.QueryRow(cctx, `SELECT version FROM orders WHERE id = $1`, w.id).Scan(&v); err == nil {
					w.committed.Store(v)
					conn = c
				} else {
					_ = c.Close(context.Background())
				}
			}
			cancel()
			if err != nil {
				w.failures++
				sleep(ctx, 50*time.Millisecond)
			}
			continue
		}
		var v int64
		err := conn.QueryRow(ctx, `UPDATE orders SET version = version + 1 WHERE id = $1 RETURNING version`, w.id).Scan(&v)
		if err != nil {
			// The COMMIT of this statement may or may not have happened: reconnect
			// and read the version back.
			w.failures++
			w.uncertain++
			_ = conn.Close(context.Background())
			conn = nil
			continue
		}
		if prev := w.committed.Load(); v != prev+1 {
			return fmt.Errorf("version went from %d to %d", prev, v)
		}
		w.committed.Store(v)
		if !signalled && v >= target/2 {
			signalled = true
			close(halfway)
		}
	}
	if !signalled {
		close(halfway)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// readyz returns the status of GET /readyz, or 0 when the request failed.
func readyz(c *http.Client, url string) int {
	resp, err := c.Get(url + "/readyz")
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// pollReadyz polls /readyz until it answers want and returns how long that took.
func pollReadyz(t *testing.T, url string, want int) time.Duration {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second} // one attempt; a slow one is tried again
	start := time.Now()
	last := 0
	waitfor.Until(t, fmt.Sprintf("/readyz to answer %d", want), func() bool {
		last = readyz(c, url)
		return last == want
	})
	return time.Since(start)
}

// ownCluster starts a PostgreSQL cluster of the test's own (one it may stop)
// with a migrated demo database, and returns it with that database's URL.
func ownCluster(ctx context.Context, t *testing.T, opts pgcluster.Options) (*pgcluster.Cluster, string) {
	t.Helper()
	cluster, err := pgcluster.New(ctx, opts)
	if err != nil {
		t.Fatalf("starting a cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := cluster.Close(waitfor.Context(t)); err != nil {
			t.Errorf("closing cluster: %v", err)
		}
	})
	pc, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = pc.Exec(ctx, "CREATE DATABASE shop")
	_ = pc.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	url := cluster.URL("shop")
	if err := pgtest.Migrate(ctx, url, true); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return cluster, url
}

// TestPostgresRestartMidStream restarts PostgreSQL while a writer commits
// increments: /readyz says 503 while it is down and 200 after, and the socket
// delivers every committed version once, in order (resuming with since on a new
// socket if the server closed it with 1011 or 1001).
func TestPostgresRestartMidStream(t *testing.T) {
	t.Parallel()
	ctx := waitfor.Context(t)
	cluster, url := ownCluster(ctx, t, pgcluster.Options{FastUnsafe: true})
	s, c, ws := setupOn(t, url, nil)
	ws.subscribe("order_changes")
	setupConn := appConn(t, url, "setup")
	id := newOrder(t, setupConn, ws, "ORD-RESTART")
	_ = setupConn.Close(ctx)
	pollReadyz(t, s.URL, http.StatusOK)

	const total = 200
	w := &retryWriter{url: url, id: id}
	halfway := make(chan struct{})
	werr := make(chan error, 1)
	start := time.Now()
	go func() { werr <- w.run(ctx, total, halfway) }()
	waitfor.Receive(t, "the writer's first half", halfway)

	down := time.Now()
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	atStop := w.committed.Load()
	took503 := pollReadyz(t, s.URL, http.StatusServiceUnavailable)
	if err := cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	took200 := pollReadyz(t, s.URL, http.StatusOK)
	t.Logf("postgres down for %v (committed %d at stop); /readyz 503 after %v, 200 %v after restart",
		upAt.Sub(down).Round(time.Millisecond), atStop, took503.Round(time.Millisecond), took200.Round(time.Millisecond))

	if err := waitfor.Receive(t, "the writer", werr); err != nil {
		t.Fatalf("%v\n%s", err, s.Log.String())
	}
	t.Logf("writer: %d committed, %d failures, %d outcomes read back, in %v", w.committed.Load(), w.failures, w.uncertain, time.Since(start).Round(time.Millisecond))

	seq := newVersionSeq(id)
	err := seq.readUntil(t, ws, total)
	if err != nil {
		code := websocket.CloseStatus(err)
		if code != websocket.StatusInternalError && code != websocket.StatusGoingAway {
			t.Fatalf("socket ended after %d events (last id %d) without 1011/1001: %v\n%s", seq.count, seq.lastID, err, s.Log.String())
		}
		t.Logf("socket closed with %d after %d events (last id %d); resuming", code, seq.count, seq.lastID)
		ws2 := dial(t, s, c)
		subscribeSince(t, ws2, "order_changes", seq.lastID)
		if err := seq.readUntil(t, ws2, total); err != nil {
			t.Fatalf("resumed socket ended after %d events: %v\n%s", seq.count, err, s.Log.String())
		}
		expectQuiet(t, ws2, url)
	} else {
		t.Logf("socket stayed open and delivered all %d versions", total)
		expectQuiet(t, ws, url)
	}
	t.Logf("all %d versions delivered %v after the writer started", total, time.Since(start).Round(time.Millisecond))
}

// process is the real binary running as a subprocess.
type process struct {
	cmd  *osexec.Cmd
	url  string
	log  *lockedBuffer
	done chan struct{}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProcess starts bin serving on port and waits for its "listening" line.
func startProcess(t *testing.T, bin, dbURL string, port int) *process {
	t.Helper()
	cmd := osexec.Command(bin)
	cmd.Env = []string{
		"DATABASE_URL=" + dbURL,
		"LISTEN_ADDR=127.0.0.1:" + strconv.Itoa(port),
		"SHOPSTREAM_ENV=development",
		"LOG_LEVEL=debug",
	}
	p := &process{cmd: cmd, log: &lockedBuffer{}, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		found := false
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "shopstream listening on "); ok && !found {
				found = true
				urls <- addr
			}
		}
		close(urls)
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			<-p.done
			t.Fatalf("shopstream exited without listening (%v):\n%s", cmd.ProcessState, p.log.String())
		}
		p.url = u
		checkContract(t, u)
	case <-time.After(waitfor.Deadline):
		t.Fatalf("shopstream did not listen within %v:\n%s", waitfor.Deadline, p.log.String())
	}
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitfor.Receive(t, "the killed process to exit", p.done)
}

// TestServerKilledAndRestarted SIGKILLs the real binary mid-stream, commits more
// while it is down, starts it again on the same port, and a new socket (same
// session) resuming with since receives every remaining version, in order, once.
func TestServerKilledAndRestarted(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	createAdmin(t, db, "admin@example.com", "admin")
	bin := filepath.Join(t.TempDir(), "shopstream")
	buildStart := time.Now()
	if out, err := osexec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built the binary in %v", time.Since(buildStart).Round(time.Millisecond))
	port := freePort(t)
	p1 := startProcess(t, bin, db, port)
	s := &testServer{URL: p1.url, DBURL: db, Log: p1.log}
	c := login(t, s, "admin@example.com", testPassword)
	ws := dial(t, s, c)
	ws.subscribe("order_changes")
	app := appConn(t, db, "writer")
	id := newOrder(t, app, ws, "ORD-SIGKILL")

	// Phase A: 1..150 while up (killed once the socket has seen 50); phase B:
	// 151..250 while down; phase C: 251..300 after the restart.
	const phaseA, phaseB, total = 150, 250, 300
	killed, restarted := make(chan struct{}), make(chan struct{})
	var committed atomic.Int64
	doneB := make(chan struct{})
	werr := make(chan error, 1)
	go func() {
		for i := 1; i <= total; i++ {
			switch i {
			case phaseA + 1:
				select {
				case <-killed:
				case <-time.After(waitfor.Deadline):
					werr <- errors.New("writer: no kill")
					return
				}
			case phaseB + 1:
				close(doneB)
				select {
				case <-restarted:
				case <-time.After(waitfor.Deadline):
					werr <- errors.New("writer: no restart")
					return
				}
			}
			if _, err := app.Exec(context.Background(), `UPDATE orders SET version = version + 1 WHERE id = $1`, id); err != nil {
				werr <- fmt.Errorf("writer at %d: %w", i, err)
				return
			}
			committed.Store(int64(i))
		}
		werr <- nil
	}()

	seq := newVersionSeq(id)
	if err := seq.readUntil(t, ws, 50); err != nil {
		t.Fatalf("socket ended early: %v\n%s", err, p1.log.String())
	}
	killAt := committed.Load()
	p1.kill(t)
	close(killed)
	// The socket drains what reached it, then ends without a close frame.
	err := seq.readUntil(t, ws, total)
	if err == nil {
		t.Fatal("socket of a killed server still delivered everything")
	}
	t.Logf("killed with %d committed; first socket saw %d versions (last id %d), then: %v", killAt, seq.count, seq.lastID, err)
	waitfor.Receive(t, "the writes while the server is down", doneB)

	downFor := time.Now()
	p2 := startProcess(t, bin, db, port)
	if p2.url != p1.url {
		t.Fatalf("restarted on %s, want %s", p2.url, p1.url)
	}
	t.Logf("restarted in %v", time.Since(downFor).Round(time.Millisecond))
	ws2 := dial(t, s, c)
	subscribeSince(t, ws2, "order_changes", seq.lastID)
	close(restarted)
	resumeStart := time.Now()
	if err := seq.readUntil(t, ws2, total); err != nil {
		t.Fatalf("resumed socket ended after %d events: %v\nfirst process:\n%s\nsecond process:\n%s", seq.count, err, p1.log.String(), p2.log.String())
	}
	if err := waitfor.Receive(t, "the writer", werr); err != nil {
		t.Fatal(err)
	}
	expectQuiet(t, ws2, db)
	t.Logf("resumed: all %d versions delivered, the rest %v after resubscribing", total, time.Since(resumeStart).Round(time.Millisecond))
}

// TestLongOpenTransactionDoesNotBlockOthers holds a transaction open that has
// updated a watched row (and so holds the doorbell's advisory lock): 100 other
// committed updates still reach the socket, and the long transaction's event
// arrives once it commits. The same 100 updates without the open transaction
// give the baseline.
func TestLongOpenTransactionDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	s, _, ws := setup(t, nil)
	ws.subscribe("order_changes")
	setupConn := appConn(t, s.DBURL, "setup")
	long := newOrder(t, setupConn, ws, "ORD-LONG")
	const rows, each = 4, 25
	var others []int64
	var writers []*pgx.Conn
	for r := 0; r < rows; r++ {
		others = append(others, newOrder(t, setupConn, ws, fmt.Sprintf("ORD-OTHER-%d", r)))
		writers = append(writers, appConn(t, s.DBURL, fmt.Sprintf("writer-%d", r)))
	}
	seq := newVersionSeq(others...)
	ctx := context.Background()

	// burst commits each updates on every other row (one writer per row) and
	// reads the rows*each events; it returns how long the commits and the
	// deliveries took.
	burst := func(what string) (commits, delivered time.Duration) {
		t.Helper()
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, rows)
		for r, row := range others {
			conn := writers[r]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					wctx, cancel := context.WithTimeout(ctx, waitfor.Deadline)
					_, err := conn.Exec(wctx, `UPDATE orders SET version = version + 1 WHERE id = $1`, row)
					cancel()
					if err != nil {
						errs <- fmt.Errorf("row %d update %d: %w", row, i+1, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		commits = time.Since(start)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if err := seq.readUntil(t, ws, seq.count+rows*each); err != nil {
			t.Fatalf("%s: socket ended after %d events: %v\n%s", what, seq.count, err, s.Log.String())
		}
		delivered = time.Since(start)
		t.Logf("%s: %d updates on %d rows committed in %v, all delivered in %v", what, rows*each, rows,
			commits.Round(time.Millisecond), delivered.Round(time.Millisecond))
		return commits, delivered
	}
	burst("baseline")

	holder := appConn(t, s.DBURL, "long-report")
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `UPDATE orders SET version = version + 1 WHERE id = $1`, long); err != nil {
		t.Fatal(err)
	}
	// Its trigger rang the doorbell, unless the sequencer (which holds the
	// doorbell lock while it works) was still busy: take it for sure, as the
	// trigger of a long import would.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7316042871525063)`); err != nil {
		t.Fatal(err)
	}
	// The long transaction holds the doorbell: nobody else can ring, and the
	// sequencer cannot silence it either.
	var held bool
	if err := setupConn.QueryRow(ctx, `SELECT NOT pg_try_advisory_xact_lock(7316042871525063)`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if !held {
		t.Fatal("the long transaction does not hold the doorbell lock")
	}
	burst("transaction open")
	for _, row := range others {
		if seq.next[row] != 2*each+1 {
			t.Fatalf("row %d: %d versions", row, seq.next[row]-1)
		}
	}

	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	seq.next[long] = 1
	commitAt := time.Now()
	if err := seq.readUntil(t, ws, seq.count+1); err != nil {
		t.Fatalf("long transaction's event missing: %v", err)
	}
	t.Logf("the long transaction's event arrived %v after its commit", time.Since(commitAt).Round(time.Millisecond))
	expectQuiet(t, ws, s.DBURL)
}

// TestShutdownClosesSockets1001 stops the server as SIGTERM would: every socket
// is closed with 1001 and the server stops within 10 s.
func TestShutdownClosesSockets1001(t *testing.T) {
	t.Parallel()
	s, c, ws1 := setup(t, nil)
	ws2 := dial(t, s, c)
	ws1.subscribe("order_changes")
	ws2.subscribe("product_changes")
	// A third socket whose client reads nothing until the server has stopped:
	// it never answers the close handshake, which must not hold the shutdown up.
	stalled := dial(t, s, c)
	stalled.subscribe("customer_changes")
	stopped := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		s.Stop(t)
		stopped <- time.Since(start)
	}()
	for i, w := range []*wsClient{ws1, ws2} {
		if code, reason := w.expectClose(); code != websocket.StatusGoingAway {
			t.Errorf("socket %d closed with %d %q, want 1001", i+1, code, reason)
		}
	}
	took := waitfor.Receive(t, "Stop", stopped)
	t.Logf("Stop returned in %v", took.Round(time.Millisecond))
	if took >= 10*time.Second {
		t.Errorf("Stop took %v, want < 10s\n%s", took, s.Log.String())
	}
	if code, reason := stalled.expectClose(); code != websocket.StatusGoingAway {
		t.Errorf("stalled socket closed with %d %q, want 1001", code, reason)
	}
}
