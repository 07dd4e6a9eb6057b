package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// exampleDir is the README's React app (Vite, React, TanStack Query and
// @shopstream/client/react).
const exampleDir = "../../examples/react-dashboard"

// startExample builds the example into a temporary directory (so the test runs
// the sources as they are, and leaves the tree alone) and serves it with
// `vite preview`, whose proxy is the example's own vite.config.ts pointed at
// target through SHOPSTREAM_URL, as a developer's `npm run dev` would be at
// :3000. It returns the preview's URL.
func startExample(t *testing.T, target string) string {
	t.Helper()
	if _, err := osexec.LookPath("node"); err != nil {
		t.Fatalf("the React example test needs Node.js 20.19+ (Debian: apt-get install nodejs npm): %v", err)
	}
	vite := filepath.Join(exampleDir, "node_modules", ".bin", "vite")
	if _, err := os.Stat(vite); err != nil {
		t.Fatalf("the React example's dependencies are not installed: run `make deps` (npm ci in %s): %v", filepath.Clean(exampleDir), err)
	}
	vite, _ = filepath.Abs(vite)
	out := t.TempDir()
	env := append(os.Environ(), "SHOPSTREAM_URL="+target, "NO_COLOR=1")

	build := osexec.Command(vite, "build", "--outDir", out, "--emptyOutDir", "--logLevel", "warn")
	build.Dir, build.Env = exampleDir, env
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("vite build: %v\n%s", err, b)
	}

	ctx, cancel := context.WithCancel(context.Background())
	preview := osexec.CommandContext(ctx, vite, "preview", "--outDir", out, "--host", "127.0.0.1", "--port", "0", "--strictPort")
	preview.Dir, preview.Env = exampleDir, env
	preview.WaitDelay = 10 * time.Second
	log := &lockedBuffer{}
	preview.Stderr = log
	stdout, err := preview.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := preview.Start(); err != nil {
		t.Fatalf("vite preview: %v", err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	found := make(chan string, 1)
	localURL := regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			_, _ = log.Write(append(sc.Bytes(), '\n'))
			if u := localURL.FindString(sc.Text()); u != "" {
				select {
				case found <- u:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- preview.Wait()
	}()
	select {
	case u := <-found:
		return u
	case <-time.After(waitfor.Deadline):
		t.Fatalf("vite preview did not say where it listens within %v:\n%s", waitfor.Deadline, log.String())
	}
	return ""
}

// exampleEvent is one event the example's page lists (#events li).
type exampleEvent struct {
	ID     string `json:"id"`
	Event  string `json:"event"`
	Order  string `json:"order"`
	Status string `json:"status"`
}

const jsExampleEvents = `JSON.stringify([...document.querySelectorAll('#events li')].map((li) =>
	({ id: li.dataset.id, event: li.dataset.event, order: li.dataset.order, status: li.dataset.status })))`

func exampleEvents(t *testing.T, ctx context.Context) []exampleEvent {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](jsExampleEvents))
	if err != nil {
		t.Fatalf("browser: reading the events: %v", err)
	}
	var evs []exampleEvent
	if err := json.Unmarshal([]byte(s), &evs); err != nil {
		t.Fatalf("the events list: %v", err)
	}
	return evs
}

// loggedOrderEvents reads the order events the service logged after position
// after, as the page would list them: the exact ids a resume must deliver.
func loggedOrderEvents(t *testing.T, conn *pgx.Conn, after int64) []exampleEvent {
	t.Helper()
	// A position is the tick's first position plus the change's rank by id
	// among the tick's changes, of every entity (migrations/007_ticks.sql).
	rows, err := conn.Query(context.Background(), `SELECT position::text AS id, 'order:' || action,
		coalesce(coalesce(new_row, old_row)->>'id', ''), coalesce(coalesce(new_row, old_row)->>'status', '')
		FROM (SELECT c.*, t.first_position + row_number() OVER (PARTITION BY t.first_position ORDER BY c.id) - 1 AS position
			FROM shopstream.ticks t JOIN shopstream.changes c ON c.id BETWEEN t.min_id AND t.max_id
				AND pg_visible_in_snapshot(c.txid, t.snap) AND NOT pg_visible_in_snapshot(c.txid, t.prev)) logged
		WHERE entity = 'order' AND position > $1 ORDER BY position`, after)
	if err != nil {
		t.Fatalf("reading the event log: %v", err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (exampleEvent, error) {
		var e exampleEvent
		return e, r.Scan(&e.ID, &e.Event, &e.Order, &e.Status)
	})
	if err != nil {
		t.Fatalf("reading the event log: %v", err)
	}
	return evs
}

// checkExampleEvents asserts the page lists exactly the logged events, same
// ids in the same order (none missing, none twice), and that those are the
// writes' events (want: an empty Order matches any row).
func checkExampleEvents(t *testing.T, page, logged, want []exampleEvent) {
	t.Helper()
	if !slices.Equal(page, logged) {
		t.Errorf("the page lists %d events, the log holds %d: first difference %s", len(page), len(logged), firstDiff(page, logged))
	}
	if len(logged) != len(want) {
		t.Fatalf("the log holds %d order events, want %d", len(logged), len(want))
	}
	for i := range want {
		g := logged[i]
		if g.Event != want[i].Event || (want[i].Order != "" && g.Order != want[i].Order) || g.Status != want[i].Status {
			t.Errorf("event %d: %+v, want %+v", i, g, want[i])
		}
	}
}

func firstDiff(page, logged []exampleEvent) string {
	for i := range min(len(page), len(logged)) {
		if page[i] != logged[i] {
			return fmt.Sprintf("at %d the page has %+v, the log %+v", i, page[i], logged[i])
		}
	}
	if len(page) > len(logged) {
		return fmt.Sprintf("the page has %+v after the log's last", page[len(logged)])
	}
	if len(logged) > len(page) {
		return fmt.Sprintf("the page lacks %+v", logged[len(page)])
	}
	return "none"
}

func jsOrderStatus(id int, status string) string {
	return fmt.Sprintf(`document.querySelector('#orders tr[data-id="%d"] .status')?.textContent === %q`, id, status)
}

// jsFetch is the number of times the example's ['orders', 'activity'] query ran.
const jsFetch = `Number(document.querySelector('#activity [data-stat="fetch"]')?.textContent || 0)`

// jsCaughtUp: the activity query refetched after the newest listed event (its
// lastEventId comes from GET /api/v1/ws/stats, not from the socket).
const jsCaughtUp = `document.querySelector('#activity [data-stat="lastEventId"]')?.textContent ===
	[...document.querySelectorAll('#events li')].pop()?.dataset.id`

// TestReactExample drives examples/react-dashboard, built and served by Vite
// with its own proxy configuration, against the real server: login, the list,
// a write by another app and the refetch it causes, a 1,000-row burst, a
// server restart resumed without gap or duplicate, logout's 1008 handled by
// the hook's callback (no navigation), and a new login resuming from
// sessionStorage.
func TestReactExample(t *testing.T) {
	ctx := newBrowser(t)
	watch := watchCSP(t, ctx) // uncaught exceptions fail the test
	db := pgtest.NewDB(t)
	s := startServer(t, db, nil)
	createAdmin(t, db, "admin@example.com", "admin")
	app := appConn(t, db, "warehouse-sync")
	ops := appConn(t, db, "ops") // reads the event log: the ids the page must list
	site := startExample(t, s.URL)

	do(t, ctx, "open the example", chromedp.Navigate(site+"/"), chromedp.WaitVisible(chromedp.ID("login")))
	// A reload or navigation would drop this: the page must never navigate itself.
	do(t, ctx, "mark the page", chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`))

	// Through the proxy, without changeOrigin: a wrong password is the
	// service's 401 (a refused Origin would be a 403 cross_site_request).
	do(t, ctx, "log in wrongly",
		chromedp.SendKeys(chromedp.ID("email"), "admin@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), "wrong password"),
		chromedp.Click(chromedp.ID("login-submit")))
	waitFor(t, ctx, "the login error", `document.getElementById('login-error').textContent.includes('wrong email or password')`)
	do(t, ctx, "log in",
		chromedp.Evaluate[chromedp.Void](`(() => { const p = document.getElementById('password');
			Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(p, '');
			p.dispatchEvent(new Event('input', { bubbles: true })); })()`),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("orders")))
	waitFor(t, ctx, `state "live"`, jsState("live"))
	waitFor(t, ctx, "the activity query's first fetch", jsFetch+` >= 1`)
	first := evalInt(t, ctx, jsFetch)

	// Another app's write: the row appears and the hook's invalidation refetches.
	exec(t, app, `UPDATE orders SET status = 'shipped' WHERE id = 1`)
	waitFor(t, ctx, "order 1 shipped in the list", jsOrderStatus(1, "shipped"))
	waitFor(t, ctx, "the refetch after the update", fmt.Sprintf("%s > %d && %s", jsFetch, first, jsCaughtUp))

	// A 1,000-row burst: a few refetches, not one per row.
	before := evalInt(t, ctx, jsFetch)
	exec(t, app, `INSERT INTO orders (order_number) SELECT 'BURST-' || g FROM generate_series(1, 1000) g`)
	waitFor(t, ctx, "the burst listed", `document.querySelectorAll('#events li').length === 1001`)
	waitFor(t, ctx, "the refetch after the burst", jsCaughtUp)
	refetches := evalInt(t, ctx, jsFetch) - before
	t.Logf("a 1,000-row INSERT caused %d refetches", refetches)
	if refetches < 1 || refetches > 100 {
		t.Errorf("a 1,000-row INSERT caused %d refetches, want a few (batched), at least one", refetches)
	}

	// Restart the server on the same address; a write lands while it is down.
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	s.Stop(t)
	waitFor(t, ctx, `state "reconnecting"`, jsState("reconnecting"))
	exec(t, app, `UPDATE orders SET status = 'delivered' WHERE id = 2`)
	s2 := startServer(t, db, map[string]string{"LISTEN_ADDR": u.Host})
	if s2.URL != s.URL {
		t.Fatalf("restarted on %s, want %s", s2.URL, s.URL)
	}
	waitFor(t, ctx, `state "live" again`, jsState("live"))
	waitFor(t, ctx, "the update made while down", jsOrderStatus(2, "delivered"))
	// A marker: once it shows, a duplicate of the resumed events would have too.
	exec(t, app, `UPDATE orders SET payment_status = 'refunded' WHERE id = 2`)
	waitFor(t, ctx, "the marker", `document.querySelectorAll('#events li').length >= 1003`)
	waitFor(t, ctx, "the refetch after the restart", jsCaughtUp)

	want := []exampleEvent{{Event: "order:updated", Order: "1", Status: "shipped"}}
	for range 1000 {
		want = append(want, exampleEvent{Event: "order:created", Status: "pending"})
	}
	want = append(want,
		exampleEvent{Event: "order:updated", Order: "2", Status: "delivered"},
		exampleEvent{Event: "order:updated", Order: "2", Status: "delivered"})
	logged := loggedOrderEvents(t, ops, 0)
	checkExampleEvents(t, exampleEvents(t, ctx), logged, want)
	last, err := strconv.ParseInt(logged[len(logged)-1].ID, 10, 64) // checked: len(want) events
	if err != nil {
		t.Fatalf("the last logged event's id: %v", err)
	}
	if n := evalInt(t, ctx, `document.querySelectorAll('#orders tbody tr').length`); n != 1002 {
		t.Errorf("the list holds %d orders, want 1002", n)
	}

	// Log out: the server closes the socket with 1008, onLoginRequired brings
	// the form back, and the page does not navigate.
	do(t, ctx, "log out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("login")))
	if n := evalInt(t, ctx, `window.sameDocument === true ? 1 : 0`); n != 1 {
		t.Fatalf("the page navigated on 1008")
	}
	exec(t, app, `UPDATE orders SET status = 'delivered' WHERE id = 1`) // while logged out

	// A new login mounts a new client; sessionStorage's positions resume it:
	// the write made while logged out comes, nothing before it again.
	do(t, ctx, "log in again",
		chromedp.SendKeys(chromedp.ID("email"), "admin@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("orders")))
	waitFor(t, ctx, `state "live" after the new login`, jsState("live"))
	waitFor(t, ctx, "the update made while logged out", jsOrderStatus(1, "delivered"))
	exec(t, app, `UPDATE orders SET status = 'cancelled' WHERE id = 2`)
	waitFor(t, ctx, "the marker after the new login", jsOrderStatus(2, "cancelled"))
	checkExampleEvents(t, exampleEvents(t, ctx), loggedOrderEvents(t, ops, last), []exampleEvent{
		{Event: "order:updated", Order: "1", Status: "delivered"},
		{Event: "order:updated", Order: "2", Status: "cancelled"},
	})
	if n := evalInt(t, ctx, `window.sameDocument === true ? 1 : 0`); n != 1 {
		t.Errorf("the page navigated")
	}
	if got := watch.seen(t, ctx); len(got) > 0 {
		t.Errorf("the example threw:\n%s", strings.Join(got, "\n"))
	}
}
