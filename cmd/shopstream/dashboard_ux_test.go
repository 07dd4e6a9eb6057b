package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/pgtest"
)

// The dashboard under load and on a phone: a 1,000-row burst renders whole
// (BenchmarkDashboardBurst holds it to no task over 100 ms), stats show as soon as the socket is live, the JSON
// view scrolls by keyboard, a 390 px wide screen shows the channels and the
// filter above the feed, notices can be dismissed, and axe-core finds no
// serious or critical violation on either layout.

// maxLongTask is the longest task the dashboard may run while it renders a
// burst (the RAIL budget for a response is 100 ms).
const maxLongTask = 100

// axePath is axe-core, installed by `make deps` (npm ci in testdata/axe).
var axePath = filepath.Join("testdata", "axe", "node_modules", "axe-core", "axe.min.js")

// loginDashboard opens the dashboard, logs in as email and waits for "live".
// before runs in the page just before the login is submitted.
func loginDashboard(t testing.TB, ctx context.Context, s *testServer, email, before string) {
	t.Helper()
	do(t, ctx, "open the dashboard", chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.ID("login")))
	if before != "" {
		do(t, ctx, "prepare the page", chromedp.Evaluate[chromedp.Void](before))
	}
	do(t, ctx, "log in",
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("feed-count")))
	waitFor(t, ctx, `state "live"`, jsState("live"))
}

// checkAxe injects axe-core and fails on every violation of impact serious or
// critical, naming the rule, the node count and the first nodes.
func checkAxe(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	src, err := os.ReadFile(axePath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("axe-core is not installed at cmd/shopstream/%s: run `make deps` (npm ci in cmd/shopstream/testdata/axe)", axePath)
	} else if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "inject axe-core", chromedp.Evaluate[chromedp.Void](string(src)+"\n;void 0"))
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ['violations']}).then((r) =>
		JSON.stringify(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => ({
			id: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
			nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ') + ': ' + n.failureSummary),
		}))))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser: running axe-core (%s): %v", where, err)
	}
	var violations []struct {
		ID, Impact, Help string
		Count            int
		Nodes            []string
	}
	if err := json.Unmarshal([]byte(out), &violations); err != nil {
		t.Fatalf("axe-core's result %q: %v", out, err)
	}
	for _, v := range violations {
		t.Errorf("axe (%s): %s %s on %d nodes: %s\n  %s", where, v.Impact, v.ID, v.Count, v.Help, strings.Join(v.Nodes, "\n  "))
	}
}

// TestDashboardBurst: a 1,000-row UPDATE from another connection reaches the
// dashboard whole (its long tasks are logged; their 100 ms budget is a
// target of BenchmarkDashboardBurst, which make bench runs); the stats are
// shown once the socket is live, without waiting for the refresh interval;
// the JSON view scrolls by keyboard; axe is content with a full feed.
func TestDashboardBurst(t *testing.T) {
	ctx, watch, s, _, app := dashboardRig(t, "bulk-import")
	exec(t, app, `INSERT INTO products (sku, name, price, stock) SELECT 'BURST-' || g, 'Burst product ' || g, 9.90, 100 FROM generate_series(1, 1000) g`)

	// The refresh interval is read from the markup: an hour here, so the only
	// stats requests are the one made at login and the one made once live. On
	// a loaded machine the login's request may itself answer after the socket
	// is up and show the numbers first, so the test waits for both requests
	// (a resource entry is written when its response ends) and then for the
	// numbers, rather than reading the count at the moment they show.
	loginDashboard(t, ctx, s, "admin@example.com", `document.getElementById('stats').dataset.every = '3600000'`)
	const statsRequests = `performance.getEntriesByType('resource').filter((e) => new URL(e.name).pathname === '/api/v1/ws/stats').length`
	waitFor(t, ctx, "two stats requests: at login and once live", statsRequests+` >= 2`)
	waitFor(t, ctx, "stats shown at once (1 client, 5 subscriptions)",
		`document.querySelector('#stats [data-stat="connectedClients"]').textContent === '1' &&
		 document.querySelector('#stats [data-stat="subscriptions"] .stat')?.textContent === '5'`)
	if n := evalInt(t, ctx, statsRequests); n != 2 {
		t.Errorf("%d stats requests after login with an hour's interval, want 2: at login and once live", n)
	}

	tasks, frames := burstLongTasks(t, ctx, app, 1000)
	t.Logf("1,000-row burst: %d long tasks (over 50 ms): %v; long animation frames: %s (the 100 ms budget is checked by BenchmarkDashboardBurst in make bench)", len(tasks), tasks, frames)

	// The feed keeps the newest rows, newest first, every one the burst's.
	rows := evalInt(t, ctx, `document.querySelectorAll('#feed > li.ev').length`)
	limit := evalInt(t, ctx, `Number(document.getElementById('feed').dataset.max)`)
	if limit < 50 || rows != limit {
		t.Errorf("the feed holds %d rows, want its cap of %d (at least 50)", rows, limit)
	}
	if n := evalInt(t, ctx, `[...document.querySelectorAll('#feed > li.ev')].filter((li, i, all) =>
		li.dataset.event !== 'product:updated' || (i > 0 && BigInt(all[i - 1].dataset.id) <= BigInt(li.dataset.id))).length`); n != 0 {
		t.Errorf("%d feed rows are not the burst's updates newest first", n)
	}

	// The JSON view: Tab from its summary focuses the scrolling element, and
	// the arrow keys scroll it.
	do(t, ctx, "open the JSON", chromedp.Click(chromedp.CSS("#feed > li.ev details.json summary")))
	waitFor(t, ctx, "the JSON shown", `!!document.querySelector('#feed > li.ev details.json[open] pre')`)
	const pre = `document.querySelector('#feed > li.ev details.json[open] pre')`
	if n := evalInt(t, ctx, pre+`.scrollHeight > `+pre+`.clientHeight + 20 ? 1 : 0`); n != 1 {
		t.Fatalf("the JSON view does not overflow (scrollHeight %d, clientHeight %d): the keyboard test needs a longer event",
			evalInt(t, ctx, pre+`.scrollHeight`), evalInt(t, ctx, pre+`.clientHeight`))
	}
	if n := evalInt(t, ctx, `(() => { const p = `+pre+`; const st = getComputedStyle(p);
		return p.tabIndex === 0 && p.getAttribute('role') === 'region' && !!p.getAttribute('aria-label') &&
			['auto', 'scroll'].includes(st.overflowY) ? 1 : 0; })()`); n != 1 {
		t.Errorf("the JSON view is not a focusable, labelled scroll container: %s",
			evalString(t, ctx, `(() => { const p = `+pre+`; return 'tabindex ' + p.getAttribute('tabindex') + ', role ' + p.getAttribute('role') + ', aria-label ' + p.getAttribute('aria-label') + ', overflow-y ' + getComputedStyle(p).overflowY; })()`))
	}
	do(t, ctx, "Tab to the JSON", chromedp.KeyEvent(kb.Tab))
	waitFor(t, ctx, "the JSON view focused", `document.activeElement === `+pre)
	do(t, ctx, "scroll it with the keyboard", chromedp.KeyEvent(kb.ArrowDown+kb.ArrowDown+kb.ArrowDown+kb.PageDown))
	waitFor(t, ctx, "the JSON view scrolled by the keys", pre+`.scrollTop > 0`)
	do(t, ctx, "close the JSON", chromedp.Click(chromedp.CSS("#feed > li.ev details.json summary")))

	checkAxe(t, ctx, "desktop, feed full")
	if got := watch.seen(t, ctx); len(got) > 0 {
		t.Errorf("the dashboard broke its Content-Security-Policy or threw:\n%s", strings.Join(got, "\n"))
	}
}

// burstLongTasks runs a 1,000-row UPDATE of the BURST- products from app
// while the logged-in dashboard at ctx observes long tasks, waits until the
// feed counts want events and has rendered them, and returns the durations
// in ms of the long tasks (over 50 ms) since the UPDATE and a JSON summary of
// the long animation frames (what they spent their time on).
func burstLongTasks(t testing.TB, ctx context.Context, app *pgx.Conn, want int) (tasks []int, frames string) {
	t.Helper()
	do(t, ctx, "observe long tasks", chromedp.Evaluate[chromedp.Void](`
		window.burstStart = performance.now();
		window.longTasks = [];
		window.longTaskObserver?.disconnect();
		window.longTaskObserver = new PerformanceObserver((list) => { window.longTasks.push(...list.getEntries()); });
		window.longTaskObserver.observe({type: 'longtask'});
		window.longFrames = [];
		window.longFrameObserver?.disconnect();
		window.longFrameObserver = new PerformanceObserver((list) => { window.longFrames.push(...list.getEntries()); });
		window.longFrameObserver.observe({type: 'long-animation-frame'});`))
	exec(t, app, `UPDATE products SET stock = stock - 1 WHERE sku LIKE 'BURST-%'`)
	waitFor(t, ctx, fmt.Sprintf("%d events counted and rendered", want),
		fmt.Sprintf(`document.getElementById('feed-count').textContent.startsWith('%d events') &&
		 document.getElementById('feed').getAttribute('aria-busy') === 'false'`, want))
	// Two frames more, so that the last rendering's task has ended and is reported.
	do(t, ctx, "two more frames", chromedp.Evaluate[chromedp.Void](
		`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 0))))`, chromedp.EvalAwaitPromise))
	out := evalString(t, ctx, `JSON.stringify([...window.longTasks, ...window.longTaskObserver.takeRecords()]
		.filter((e) => e.startTime + e.duration >= window.burstStart).map((e) => Math.round(e.duration)))`)
	if err := json.Unmarshal([]byte(out), &tasks); err != nil {
		t.Fatalf("long tasks %q: %v", out, err)
	}
	frames = evalString(t, ctx, `JSON.stringify(window.longFrames.filter((e) => e.startTime >= window.burstStart).map((e) => ({
		ms: Math.round(e.duration), blocking: Math.round(e.blockingDuration),
		rendering: e.renderStart ? Math.round(e.startTime + e.duration - e.renderStart) : 0,
		styleLayoutPaint: e.styleAndLayoutStart ? Math.round(e.startTime + e.duration - e.styleAndLayoutStart) : 0,
		scripts: e.scripts.map((s) => s.invoker + ' ' + Math.round(s.duration) + ' ms'),
	})))`)
	return tasks, frames
}

// BenchmarkDashboardBurst is the dashboard's rendering budget, run by make
// bench: each iteration sends a 1,000-row UPDATE to a logged-in dashboard and
// the benchmark fails when any task it causes runs over 100 ms (the RAIL
// budget for a response). It reports the longest task and the number of long
// tasks (over 50 ms) per burst.
func BenchmarkDashboardBurst(b *testing.B) {
	ctx := newBrowser(b)
	db := pgtest.NewDB(b)
	s := startServer(b, db, nil)
	createAdmin(b, db, "admin@example.com", "admin")
	app := appConn(b, db, "bulk-import")
	exec(b, app, `INSERT INTO products (sku, name, price, stock) SELECT 'BURST-' || g, 'Burst product ' || g, 9.90, 100 FROM generate_series(1, 1000) g`)
	loginDashboard(b, ctx, s, "admin@example.com", "")
	longest, count, bursts := 0, 0, 0
	for b.Loop() {
		bursts++
		tasks, frames := burstLongTasks(b, ctx, app, 1000*bursts)
		count += len(tasks)
		for _, d := range tasks {
			if d > maxLongTask {
				b.Errorf("burst %d: a task of %d ms, want none over %d ms (long tasks: %v; long animation frames: %s)", bursts, d, maxLongTask, tasks, frames)
			}
			longest = max(longest, d)
		}
	}
	b.ReportMetric(float64(longest), "ms-longest-task")
	b.ReportMetric(float64(count)/float64(bursts), "long-tasks/burst")
}

// TestDashboardPhone: on a 390 px wide screen the channel toggles and the
// filter come before the feed and nothing is wider than the screen; a
// refused filter's notice closes with its button; axe is content.
func TestDashboardPhone(t *testing.T) {
	ctx, watch, s, _, app := dashboardRig(t, "warehouse-sync")

	do(t, ctx, "a phone's viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	loginDashboard(t, ctx, s, "admin@example.com", "")
	exec(t, app, `INSERT INTO products (sku, name, price, stock) SELECT 'PHONE-' || g, 'Phone product ' || g, 4.50, 10 FROM generate_series(1, 30) g`)
	exec(t, app, `UPDATE products SET stock = stock + 1 WHERE sku LIKE 'PHONE-%'`)
	waitFor(t, ctx, "the feed filled", `document.querySelectorAll('#feed > li.ev').length === 60 &&
		document.getElementById('feed').getAttribute('aria-busy') === 'false'`)

	// Tops, in page coordinates, of what must come before the feed.
	pos := func(sel string) int {
		return evalInt(t, ctx, fmt.Sprintf(`Math.round(document.querySelector(%q).getBoundingClientRect().top + scrollY)`, sel))
	}
	feedTop := pos("#feed")
	for _, sel := range []string{"#channels", `#channels input[name="transaction_changes"]`, "#filter-channel", "#filter", "#filter-apply"} {
		if top := pos(sel); top >= feedTop {
			t.Errorf("on a 390 px screen %s starts at %d px, below the feed's top at %d px", sel, top, feedTop)
		}
	}
	if top := pos("#filter-apply"); top > 844 {
		t.Errorf("on a 390 px screen the filter's Apply button starts at %d px, below the first screen (844 px)", top)
	}
	if w := evalInt(t, ctx, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the page is %d px wide on a 390 px screen", w)
	}
	checkAxe(t, ctx, "390 px, feed filled")
	do(t, ctx, "scroll to the top", chromedp.Evaluate[chromedp.Void](`scrollTo(0, 0)`))
	saveScreenshotAs(t, ctx, "dashboard-phone.png", chromedp.CaptureScreenshot()) // the first screen

	// A filter the server refuses (an empty list) shows a notice; its close
	// button dismisses it.
	do(t, ctx, "apply a refused filter",
		chromedp.SetValue(chromedp.ID("filter-channel"), "order_changes"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('filter-channel').dispatchEvent(new Event('change'))`),
		chromedp.SendKeys(chromedp.ID("filter"), `{"status": []}`),
		chromedp.Click(chromedp.ID("filter-apply")))
	waitFor(t, ctx, "the notice shown", `!document.getElementById('notice').hidden &&
		document.getElementById('notice').textContent.includes('non-empty list')`)
	label := evalString(t, ctx, `document.querySelector('#notice button').getAttribute('aria-label') || ''`)
	if label == "" {
		t.Errorf("the notice's close button has no aria-label")
	}
	checkAxe(t, ctx, "390 px, notice shown")
	do(t, ctx, "dismiss the notice", chromedp.Click(chromedp.CSS("#notice button")))
	waitFor(t, ctx, "the notice hidden", `document.getElementById('notice').hidden`)

	if got := watch.seen(t, ctx); len(got) > 0 {
		t.Errorf("the dashboard broke its Content-Security-Policy or threw:\n%s", strings.Join(got, "\n"))
	}
}

func evalString(t testing.TB, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
	return s
}
