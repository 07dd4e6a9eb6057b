package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/contract"
	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// The end-to-end tests check every REST response and socket frame they read
// against docs/openapi.yaml and docs/asyncapi.yaml: http.DefaultTransport is
// wrapped (every client without a Transport of its own uses it, the socket's
// handshake included) and the socket helpers check each frame. A violation
// fails the test whose server answered, naming the path or frame and the
// validation error.

// apiContract is the loaded pair of descriptions (set up in TestMain).
var apiContract *contract.Spec

// contractSeenFile, when set, receives the operations, responses and messages
// the run exercised, one a line (to add up runs of parts of the suite).
const contractSeenFile = "CONTRACT_SEEN_FILE"

// setUpContract loads the descriptions and wraps http.DefaultTransport.
func setUpContract() error {
	s, err := contract.Load("../../docs")
	if err != nil {
		return fmt.Errorf("loading the API descriptions: %w", err)
	}
	apiContract = s
	http.DefaultTransport = &contractTransport{base: http.DefaultTransport}
	return nil
}

// finishContract reports, after a run of the whole suite, the operations and
// messages of the descriptions no test exercised (the descriptions promise
// what nobody checked): a failure. It returns the exit code.
func finishContract(code int) int {
	if path := os.Getenv(contractSeenFile); path != "" {
		if err := os.WriteFile(path, []byte(strings.Join(apiContract.Seen(), "\n")+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "contract:", err)
		}
	}
	if code != 0 || !wholeSuite() {
		return code
	}
	if unseen := apiContract.Unseen(apiContract.Operations()); len(unseen) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: contract: no end-to-end test exercised these parts of docs/openapi.yaml and docs/asyncapi.yaml:\n  %s\n",
			strings.Join(unseen, "\n  "))
		return 1
	}
	return code
}

// wholeSuite reports whether every test of the package ran (no -run, -skip
// or -short).
func wholeSuite() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return !testing.Short()
}

// contractTests maps a test server's host:port to the test it belongs to.
var contractTests = struct {
	sync.Mutex
	m map[string]*contractTest
}{m: map[string]*contractTest{}}

type contractTest struct {
	mu     sync.Mutex
	report func(error)
	done   bool
}

// checkContract makes every response from baseURL (a test server) be
// checked against docs/openapi.yaml, failing t, until t ends.
func checkContract(t testing.TB, baseURL string) {
	checkContractReporting(t, baseURL, func(err error) { t.Errorf("contract: %v", err) })
}

// checkContractReporting is checkContract with violations passed to report.
func checkContractReporting(t testing.TB, baseURL string, report func(error)) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		t.Fatalf("checkContract: bad URL %q", baseURL)
	}
	ct := &contractTest{report: report}
	contractTests.Lock()
	contractTests.m[u.Host] = ct
	contractTests.Unlock()
	t.Cleanup(func() {
		ct.mu.Lock()
		ct.done = true
		ct.mu.Unlock()
		contractTests.Lock()
		if contractTests.m[u.Host] == ct {
			delete(contractTests.m, u.Host)
		}
		contractTests.Unlock()
	})
}

// fail reports a violation on the test, unless it has ended.
func (ct *contractTest) fail(err error) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if !ct.done {
		ct.report(err)
	}
}

// contractTransport checks the responses of registered test servers.
type contractTransport struct{ base http.RoundTripper }

func (c *contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	contractTests.Lock()
	ct := contractTests.m[req.URL.Host]
	contractTests.Unlock()
	if ct == nil {
		return resp, nil
	}
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols { // a socket's body is the connection
		var rerr error
		body, rerr = io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{rerr}))
		if rerr != nil {
			return resp, nil // cut off: the test sees the error
		}
	}
	if err := apiContract.CheckResponse(req.Method, req.URL.Path, resp.StatusCode, resp.Header, body); err != nil {
		ct.fail(err)
	}
	return resp, nil
}

// errReader returns err (io.EOF when nil).
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err == nil {
		return 0, io.EOF
	}
	return 0, e.err
}

// frameChecks validates the frames a test's socket read, off the reading
// goroutine: a test that reads 100,000 events must keep up with the server
// (the race detector makes a check cost a tenth of a millisecond). The
// first eagerFrames frames of a socket are checked as they come; later ones
// when the test ends, so that a bulk test's checks do not take the CPU its
// reader and server need while the events flow. The test waits for every
// check before it ends (see drain).
type frameChecks struct {
	t        *testing.T
	report   func(error)
	batch    bool
	checked  int           // messages
	busy     time.Duration // spent checking
	mu       sync.Mutex
	frames   int      // read so far
	pending  [][]byte // for run
	deferred [][]byte // for drain
	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// newFrameChecks starts the checker of a socket speaking subprotocol; the
// test's cleanup waits for it.
func newFrameChecks(t *testing.T, subprotocol string) *frameChecks {
	return newFrameChecksReporting(t, subprotocol, func(err error) { t.Errorf("contract: %v", err) })
}

// newFrameChecksReporting is newFrameChecks with violations passed to report.
func newFrameChecksReporting(t *testing.T, subprotocol string, report func(error)) *frameChecks {
	fc := &frameChecks{t: t, report: report, batch: subprotocol == "shopstream.batch",
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go fc.run()
	t.Cleanup(fc.drain)
	return fc
}

// add queues one frame the server sent.
func (fc *frameChecks) add(typ websocket.MessageType, b []byte) {
	if typ != websocket.MessageText {
		fc.report(fmt.Errorf("the server sent a binary frame %.100q", b))
		return
	}
	fc.mu.Lock()
	fc.frames++
	if fc.frames > eagerFrames {
		fc.deferred = append(fc.deferred, bytes.Clone(b))
		fc.mu.Unlock()
		return
	}
	fc.pending = append(fc.pending, bytes.Clone(b))
	fc.mu.Unlock()
	select {
	case fc.wake <- struct{}{}:
	default:
	}
}

func (fc *frameChecks) run() {
	defer close(fc.done)
	for {
		fc.mu.Lock()
		frames := fc.pending
		fc.pending = nil
		fc.mu.Unlock()
		fc.check(frames)
		if len(frames) > 0 {
			continue
		}
		select {
		case <-fc.wake:
		case <-fc.stop:
			fc.mu.Lock()
			left := len(fc.pending)
			fc.mu.Unlock()
			if left == 0 {
				return
			}
		}
	}
}

// eagerFrames is how many frames of a socket are checked as they come.
const eagerFrames = 1000

func (fc *frameChecks) check(frames [][]byte) {
	start := time.Now()
	for _, b := range frames {
		names, err := apiContract.CheckServerFrame(b, fc.batch)
		if err != nil {
			fc.report(err)
		}
		fc.checked += len(names)
	}
	fc.busy += time.Since(start)
}

// drain waits until every frame read is checked.
func (fc *frameChecks) drain() {
	fc.once.Do(func() {
		close(fc.stop)
		<-fc.done
		fc.mu.Lock()
		deferred := fc.deferred
		fc.deferred = nil
		fc.mu.Unlock()
		fc.check(deferred)
		if fc.busy > time.Second {
			fc.t.Logf("contract: checked %d messages of one socket in %v", fc.checked, fc.busy.Round(time.Millisecond))
		}
	})
	<-fc.done
}

// noteSent records which client message b is (tests send invalid ones on
// purpose: those are not checked).
func noteSent(b []byte) { _, _ = apiContract.ClassifyClientMessage(b) }

// TestContractStaticFiles fetches the files the description lists (the
// dashboard test reads them through Chromium, which the checks do not see).
func TestContractStaticFiles(t *testing.T) {
	t.Parallel()
	s := startServer(t, pgtest.NewDB(t), nil)
	for _, path := range []string{"/", "/dashboard.js", "/dashboard.css", "/shopstream.js", "/shopstream.d.ts"} {
		resp, err := http.Get(s.URL + path) // checked by the contract transport
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); strings.HasSuffix(path, ".d.ts") && ct != "text/plain; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q, want text/plain; charset=utf-8 (not the machine's MIME type for .ts)", path, ct)
		}
	}
}

// recorder collects the violations a check reports.
type recorder struct {
	mu   sync.Mutex
	errs []string
}

func (r *recorder) add(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err.Error())
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// TestContractCatchesDrift shows that the hooks are live: a server that
// answers /api/auth/me and the socket with shapes the descriptions do not
// allow is caught by the same transport and frame checks the end-to-end
// tests use, with the path or frame and the schema error named.
func TestContractCatchesDrift(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/auth/me":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"user":{"id":"1","email":"a@example.com","name":"A","role":"admin"}}`)
		case "/ws":
			conn, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer conn.CloseNow()
			ctx := r.Context()
			_ = conn.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribed","channel":"order_changes","position":1042}`))
			for range eagerFrames {
				_ = conn.Write(ctx, websocket.MessageText, []byte(`{"type":"pong","timestamp":"2026-01-25T10:30:00.000Z"}`))
			}
			// Past eagerFrames: checked when the test ends.
			_ = conn.Write(ctx, websocket.MessageText, []byte(`{"type":"unsubscribed","channel":"order_changes","extra":1}`))
			_, _, _ = conn.Read(ctx) // until the client goes
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var rest, frames recorder
	checkContractReporting(t, srv.URL, rest.add)

	resp, err := http.Get(srv.URL + "/api/auth/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := rest.all(); len(got) != 1 || !strings.Contains(got[0], "GET /api/auth/me answered 200") || !strings.Contains(got[0], "/user/id") {
		t.Fatalf("a user id as a string: reported %q, want one violation naming the path and /user/id", got)
	}

	conn, _, err := websocket.Dial(waitfor.Context(t), "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	w := &wsClient{t: t, conn: conn, checks: newFrameChecksReporting(t, conn.Subprotocol(), frames.add)}
	for range eagerFrames + 2 {
		w.readRaw()
	}
	w.checks.drain()
	got := frames.all()
	if len(got) != 2 || !strings.Contains(got[0], `"position":1042`) || !strings.Contains(got[0], "at '/position'") {
		t.Fatalf("a position as a number: reported %q, want a violation naming the frame and /position", got)
	}
	if !strings.Contains(got[1], `"extra":1`) || !strings.Contains(got[1], "additional properties 'extra'") {
		t.Fatalf("an unknown field after %d frames: reported %q", eagerFrames, got[1])
	}
	if got := rest.all(); len(got) != 1 {
		t.Fatalf("the handshake was reported: %q", got[1:])
	}
}
