package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// chromiumPath is Debian's Chromium, which the end-to-end dashboard test drives.
const chromiumPath = "/usr/bin/chromium"

// newBrowser starts a headless Chromium with a fresh profile and returns a tab.
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the dashboard test needs Chromium at %s (Debian/Ubuntu: apt-get install -y chromium): %v", chromiumPath, err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*waitfor.Deadline)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	return ctx
}

// do runs browser actions and fails the test on the first error.
func do(t testing.TB, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// waitFor polls a JavaScript condition until it is true, for up to
// waitfor.Deadline.
func waitFor(t testing.TB, ctx context.Context, what, cond string) {
	t.Helper()
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(waitfor.Deadline))); err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('state').textContent`))
		t.Fatalf("browser: %s within %v: %v (state %q after %v)", what, waitfor.Deadline, err, state, time.Since(start).Round(time.Millisecond))
	}
}

func evalInt(t testing.TB, ctx context.Context, expr string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
	if err != nil {
		t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
	return n
}

// jsChange is an expression counting feed items of event whose changed field
// went from old to new, as the dashboard renders them.
func jsChange(event, field, old, new string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#feed > li.ev[data-event=%q]')].filter((li) =>
		[...li.querySelectorAll('.change')].some((c) => c.querySelector('.field').textContent === %q &&
			c.querySelector('.old').textContent === %q && c.querySelector('.new').textContent === %q)).length`,
		event, field, old, new)
}

func jsState(state string) string {
	return fmt.Sprintf(`document.getElementById('state').textContent === %q`, state)
}

// dashboardRig is what a dashboard test starts from: a browser whose page
// is watched for Content-Security-Policy violations and uncaught exceptions,
// a server on a fresh database with the admin admin@example.com, and a
// connection of another app named appName to write from.
func dashboardRig(t *testing.T, appName string) (ctx context.Context, watch *cspWatch, s *testServer, db string, app *pgx.Conn) {
	t.Helper()
	ctx = newBrowser(t)
	watch = watchCSP(t, ctx)
	db = pgtest.NewDB(t)
	s = startServer(t, db, nil)
	createAdmin(t, db, "admin@example.com", "admin")
	return ctx, watch, s, db, appConn(t, db, appName)
}

func TestDashboard(t *testing.T) {
	// The whole run is under the Content-Security-Policy: any violation (or
	// uncaught exception) fails the test at the end.
	ctx, watch, s, db, app := dashboardRig(t, "warehouse-sync")

	// The client module is served as JavaScript.
	resp, err := http.Get(s.URL + "/shopstream.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.Contains(ct, "javascript") {
		t.Fatalf("GET /shopstream.js: %d %q, want 200 and a JavaScript type", resp.StatusCode, ct)
	}

	// Not logged in: /api/auth/me is 401 and the login form shows.
	do(t, ctx, "open the dashboard", chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.ID("login")))
	waitFor(t, ctx, `state "login required" before login`, jsState("login required"))

	// A wrong password shows the server's message.
	do(t, ctx, "log in wrongly",
		chromedp.SendKeys(chromedp.ID("email"), "admin@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), "wrong password"),
		chromedp.Click(chromedp.ID("login-submit")))
	waitFor(t, ctx, "login error shown", `document.getElementById('login-error').textContent.includes('wrong email or password')`)

	do(t, ctx, "log in",
		chromedp.Evaluate[chromedp.Void](`document.getElementById('password').value = ''`),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("feed-count")))
	waitFor(t, ctx, `state "live"`, jsState("live"))
	waitFor(t, ctx, "stats shown", `document.querySelector('#stats [data-stat="connectedClients"]').textContent === '1'`)

	// An update made by another app appears within 2 s with its changed fields.
	exec(t, app, `UPDATE orders SET status = 'shipped' WHERE id = 1`)
	waitFor(t, ctx, "the order update in the feed", jsChange("order:updated", "status", "pending", "shipped")+` === 1`)
	waitFor(t, ctx, "the actor shown", `document.querySelector('#feed > li.ev .actor').textContent === 'warehouse-sync'`)

	// Restart the server on the same address.
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	s.Stop(t)
	waitFor(t, ctx, `state "reconnecting"`, jsState("reconnecting"))
	exec(t, app, `UPDATE orders SET status = 'delivered' WHERE id = 2`) // committed while the server is down
	s2 := startServer(t, db, map[string]string{"LISTEN_ADDR": u.Host})
	if s2.URL != s.URL {
		t.Fatalf("restarted on %s, want %s", s2.URL, s.URL)
	}
	waitFor(t, ctx, `state "live" again`, jsState("live"))
	waitFor(t, ctx, "the update made while down in the feed", jsChange("order:updated", "status", "processing", "delivered")+` >= 1`)

	// A few more changes; the last one is a marker: once it shows, any
	// duplicate of the resumed events would have shown too.
	exec(t, app, `INSERT INTO products (sku, name, price, stock) VALUES ('TEA-042', 'Sencha, 100 g', 11.90, 60)`)
	exec(t, app, `UPDATE customers SET phone = '+44 20 7946 0999' WHERE id = 1`)
	exec(t, app, `UPDATE shipments SET status = 'in_transit' WHERE order_id = 2`)
	exec(t, app, `UPDATE products SET stock = stock - 2, price = 13.50 WHERE sku = 'MUG-002'`)
	exec(t, app, `UPDATE orders SET payment_status = 'refunded' WHERE id = 2`)
	waitFor(t, ctx, "the marker event", jsChange("order:updated", "payment_status", "paid", "refunded")+` === 1`)
	if n := evalInt(t, ctx, jsChange("order:updated", "status", "processing", "delivered")); n != 1 {
		t.Errorf("the event committed while the server was down is in the feed %d times, want once", n)
	}
	if n := evalInt(t, ctx, jsChange("order:updated", "status", "pending", "shipped")); n != 1 {
		t.Errorf("the event before the restart is in the feed %d times, want once", n)
	}
	if n := evalInt(t, ctx, `document.querySelectorAll('#feed > li.ev').length`); n != 7 {
		t.Errorf("the feed holds %d events, want 7", n)
	}

	// The full JSON is there on demand.
	do(t, ctx, "open the JSON", chromedp.Click(chromedp.CSS("#feed > li.ev details.json summary")))
	waitFor(t, ctx, "the JSON shown", `(document.querySelector('#feed > li.ev details.json pre') || {}).textContent?.includes('"refunded"')`)

	do(t, ctx, "close the JSON", chromedp.Click(chromedp.CSS("#feed > li.ev details.json summary")))
	waitFor(t, ctx, "stats caught up", `document.querySelector('#stats [data-stat="lastEventId"]').textContent === document.querySelector('#feed > li.ev').dataset.id`)
	saveScreenshot(t, ctx)

	// Log out: the login form comes back.
	do(t, ctx, "log out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("login")))
	waitFor(t, ctx, `state "login required" after logout`, jsState("login required"))
	// The session is gone: a reload asks /api/auth/me again and shows the form.
	do(t, ctx, "reload", chromedp.Navigate(s2.URL+"/"), chromedp.WaitVisible(chromedp.ID("login")))
	waitFor(t, ctx, `state "login required" after a reload`, jsState("login required"))
	if n := evalInt(t, ctx, `document.getElementById('app-view').hidden ? 0 : 1`); n != 0 {
		t.Errorf("the feed is visible after logout")
	}
	if got := watch.seen(t, ctx); len(got) > 0 {
		t.Errorf("the dashboard broke its Content-Security-Policy or threw:\n%s", strings.Join(got, "\n"))
	}
}

// saveScreenshot captures the dashboard. With UPDATE_SCREENSHOT=1 it replaces
// docs/dashboard.png (shown in the README); otherwise it goes to a temporary
// directory, so that a test run leaves the tree unchanged.
func saveScreenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	saveScreenshotAs(t, ctx, "dashboard.png", chromedp.FullScreenshot(100))
}

// saveScreenshotAs is saveScreenshot for docs/name, taken by shot.
func saveScreenshotAs(t *testing.T, ctx context.Context, name string, shot chromedp.Action[[]byte]) {
	t.Helper()
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), name)
	if ok, _ := strconv.ParseBool(os.Getenv("UPDATE_SCREENSHOT")); ok {
		path = filepath.Join("..", "..", "docs", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("writing the screenshot: %v", err)
	}
	t.Logf("screenshot: %s", path)
}
