package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// cspWatch collects, from the moment it is made, every Content-Security-Policy
// violation in the tab's documents (a securitypolicyviolation listener in each
// new document reports to the console), the browser's security log entries,
// and uncaught exceptions.
type cspWatch struct {
	mu       sync.Mutex
	problems []string
	markers  map[string]bool
}

const cspMarker = "shopstream-console-marker:"

func watchCSP(t *testing.T, ctx context.Context) *cspWatch {
	t.Helper()
	w := &cspWatch{markers: map[string]bool{}}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			w.mu.Lock()
			switch {
			case strings.HasPrefix(m.Text, cspMarker):
				w.markers[m.Text] = true
			case m.IsException(), m.Source == "security", strings.Contains(m.Text, "Content Security Policy"),
				strings.HasPrefix(m.Text, "securitypolicyviolation"):
				w.problems = append(w.problems, m.String())
			}
			w.mu.Unlock()
		}
	}()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `document.addEventListener('securitypolicyviolation', (e) =>
			console.error('securitypolicyviolation ' + e.violatedDirective + ' blocked ' + e.blockedURI + ' in ' + e.documentURI));`,
	}); err != nil {
		t.Fatalf("browser: adding the violation listener: %v", err)
	}
	return w
}

// seen returns what was reported up to now: a marker written to the console
// last is waited for, so every earlier message has arrived.
func (w *cspWatch) seen(t *testing.T, ctx context.Context) []string {
	t.Helper()
	marker := fmt.Sprintf("%s%p-%d", cspMarker, w, len(w.markers))
	do(t, ctx, "console marker", chromedp.Evaluate[chromedp.Void](fmt.Sprintf("console.log(%q)", marker)))
	waitfor.Until(t, "the console marker", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.markers[marker]
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.problems...)
}

// TestSecurityHeaders: the dashboard, its assets and the API carry the
// hardening headers.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	s := startServer(t, pgtest.NewDB(t), nil)
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	}
	for _, path := range []string{"/", "/index.html", "/dashboard.js", "/dashboard.css", "/shopstream.js", "/api/auth/me", "/no-such-file", "/healthz"} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("GET %s: %s is %q, want %q", path, k, got, v)
			}
		}
	}
}

// TestDashboardCannotBeFramed: a page of the same site (another port of
// 127.0.0.1) framing the logged-in dashboard gets an error page in the frame,
// and the violation watcher of the dashboard tests does see a violation.
func TestDashboardCannotBeFramed(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	db := pgtest.NewDB(t)
	s := startServer(t, db, nil)
	createAdmin(t, db, "admin@example.com", "admin")
	do(t, ctx, "open the dashboard", chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.ID("login")))
	watch := watchCSP(t, ctx)
	do(t, ctx, "log in",
		chromedp.SendKeys(chromedp.ID("email"), "admin@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("feed-count")))
	waitFor(t, ctx, `state "live"`, jsState("live"))

	// The watcher sees a violation when there is one: an inline script.
	do(t, ctx, "inject an inline script", chromedp.Evaluate[chromedp.Void](
		`(() => { const s = document.createElement('script'); s.textContent = 'window.inlineRan = true'; document.head.append(s); })()`))
	if got := watch.seen(t, ctx); len(got) == 0 || evalInt(t, ctx, `window.inlineRan ? 1 : 0`) != 0 {
		t.Fatalf("an inline script ran or was not reported: %v", got)
	}

	framer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><iframe id="f" src="%s/"></iframe>
<script>document.getElementById('f').addEventListener('load', () => { document.body.dataset.loaded = '1'; });</script>`, s.URL)
	}))
	defer framer.Close()
	do(t, ctx, "open the framing page", chromedp.Navigate(framer.URL+"/"))
	waitFor(t, ctx, "the frame's load event", `document.body.dataset.loaded === '1'`)
	tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		t.Fatalf("browser: frame tree: %v", err)
	}
	if len(tree.FrameTree.ChildFrames) != 1 {
		t.Fatalf("the framing page has %d frames, want 1", len(tree.FrameTree.ChildFrames))
	}
	f := tree.FrameTree.ChildFrames[0].Frame
	if strings.HasPrefix(f.URL, s.URL) && f.UnreachableURL == "" {
		t.Fatalf("the dashboard loaded in a same-site frame: %s", f.URL)
	}
	t.Logf("the frame shows %s (unreachable: %s)", f.URL, f.UnreachableURL)
}
