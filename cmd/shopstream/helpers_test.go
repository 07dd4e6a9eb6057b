package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/testutil"
	"github.com/shopstream/shopstream/internal/waitfor"
)

func TestMain(m *testing.M) {
	if err := setUpContract(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(finishContract(pgtest.Main(m)))
}

// lockedBuffer collects a server's log output safely.
type lockedBuffer = testutil.Buffer

// testServer is the real program, started with run() on 127.0.0.1:0.
type testServer struct {
	URL string
	// MetricsURL is METRICS_ADDR's server, when set.
	MetricsURL string
	// DebugURL is DEBUG_ADDR's pprof server, when set.
	DebugURL string
	DBURL    string
	Log      *lockedBuffer
	stop     context.CancelFunc
	done     chan error
}

// startServer runs `shopstream serve` against dbURL with extra environment.
func startServer(t testing.TB, dbURL string, extra map[string]string) *testServer {
	t.Helper()
	env := map[string]string{
		"DATABASE_URL": dbURL, "LISTEN_ADDR": "127.0.0.1:0", "SHOPSTREAM_ENV": "development", "LOG_LEVEL": "debug",
	}
	for k, v := range extra {
		env[k] = v
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &testServer{DBURL: dbURL, Log: &lockedBuffer{}, stop: cancel, done: make(chan error, 1)}
	go func() {
		err := run(ctx, []string{"serve"}, getenv, strings.NewReader(""), pw, s.Log)
		pw.CloseWithError(io.EOF)
		s.done <- err
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "pprof listening on "); ok {
			s.DebugURL = addr
		}
		if addr, ok := strings.CutPrefix(sc.Text(), "metrics listening on "); ok {
			s.MetricsURL = addr
			checkContract(t, addr)
		}
		if addr, ok := strings.CutPrefix(sc.Text(), "shopstream listening on "); ok {
			s.URL = addr
			checkContract(t, addr)
			break
		}
	}
	if s.URL == "" {
		cancel()
		t.Fatalf("server did not start: %v\n%s", <-s.done, s.Log.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop shuts the server down (as SIGTERM would) and waits for run to return.
func (s *testServer) Stop(t testing.TB) {
	t.Helper()
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("server exited with error: %v", err)
		}
	case <-time.After(waitfor.Deadline):
		t.Errorf("server did not stop within %v", waitfor.Deadline)
	}
}

// runCLI runs one shopstream command against dbURL.
func runCLI(t testing.TB, dbURL string, stdin string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return dbURL
		}
		return ""
	}
	if err := run(context.Background(), args, getenv, strings.NewReader(stdin), &out, &errOut); err != nil {
		t.Fatalf("shopstream %v: %v\n%s", args, err, errOut.String())
	}
	return out.String()
}

const testPassword = "correct horse battery"

// createAdmin creates an admin with testPassword through the CLI.
func createAdmin(t testing.TB, dbURL, email, role string) {
	t.Helper()
	runCLI(t, dbURL, testPassword+"\n", "admin", "create", "--email", email, "--name", "Test "+role, "--role", role)
}

// login logs in over HTTP and returns a client that carries the session cookie.
func login(t testing.TB, s *testServer, email, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: waitfor.Deadline}
	resp := postJSON(t, c, s.URL+"/api/auth/login", map[string]string{"email": email, "password": password})
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	return c
}

func postJSON(t testing.TB, c *http.Client, url string, body any) *http.Response {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return resp
}

// wsClient is a test's socket.
type wsClient struct {
	t      *testing.T
	conn   *websocket.Conn
	checks *frameChecks // docs/asyncapi.yaml, for every frame read
}

// dial opens /ws with the client's cookies and reads the connected message.
func dial(t *testing.T, s *testServer, c *http.Client) *wsClient {
	t.Helper()
	w := dialRaw(t, s, c, nil)
	m := w.read()
	if m["type"] != "connected" {
		t.Fatalf("first message: %v", m)
	}
	return w
}

func dialRaw(t *testing.T, s *testServer, c *http.Client, opts *websocket.DialOptions) *wsClient {
	t.Helper()
	if opts == nil {
		opts = &websocket.DialOptions{}
	}
	opts.HTTPClient = c
	conn, resp, err := websocket.Dial(waitfor.Context(t), "ws"+strings.TrimPrefix(s.URL, "http")+"/ws", opts)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	conn.SetReadLimit(1 << 24)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return newWSClient(t, conn)
}

// newWSClient wraps a test's open socket.
func newWSClient(t *testing.T, conn *websocket.Conn) *wsClient {
	return &wsClient{t: t, conn: conn, checks: newFrameChecks(t, conn.Subprotocol())}
}

// readRaw reads one frame, failing after waitfor.Deadline.
func (w *wsClient) readRaw() []byte {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	typ, b, err := w.conn.Read(ctx)
	if err != nil {
		w.t.Fatalf("socket read: %v", err)
	}
	w.checks.add(typ, b)
	return b
}

func (w *wsClient) read() map[string]any {
	w.t.Helper()
	var m map[string]any
	b := w.readRaw()
	if err := json.Unmarshal(b, &m); err != nil {
		w.t.Fatalf("socket sent invalid JSON %q: %v", b, err)
	}
	return m
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	b, _ := json.Marshal(v)
	w.sendRaw(b)
}

func (w *wsClient) sendRaw(b []byte) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	noteSent(b)
	if err := w.conn.Write(ctx, websocket.MessageText, b); err != nil {
		w.t.Fatalf("socket write: %v", err)
	}
}

// subscribe subscribes to channel and returns the position of "subscribed".
func (w *wsClient) subscribe(channel string) string {
	w.t.Helper()
	w.send(map[string]any{"type": "subscribe", "channel": channel})
	m := w.read()
	if m["type"] != "subscribed" || m["channel"] != channel {
		w.t.Fatalf("want subscribed to %s, got %v", channel, m)
	}
	return m["position"].(string)
}

// expectClose reads until the socket closes and returns the close status.
func (w *wsClient) expectClose() (websocket.StatusCode, string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	for {
		typ, b, err := w.conn.Read(ctx)
		if err == nil {
			w.checks.add(typ, b)
			continue
		}
		var ce websocket.CloseError
		if errorsAs(err, &ce) {
			return ce.Code, ce.Reason
		}
		w.t.Fatalf("socket ended without a close frame: %v", err)
	}
}

// appConn connects as another app would, with its own application_name; the
// connection is closed when the test ends. A loop uses withAppConn instead.
func appConn(t testing.TB, dbURL, appName string) *pgx.Conn {
	t.Helper()
	conn := openAppConn(t, dbURL, appName)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// withAppConn runs fn on a connection of its own, closed when fn returns.
func withAppConn(t *testing.T, dbURL, appName string, fn func(conn *pgx.Conn)) {
	t.Helper()
	conn := openAppConn(t, dbURL, appName)
	defer conn.Close(context.Background())
	fn(conn)
}

func openAppConn(t testing.TB, dbURL, appName string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = appName
	conn, err := pgx.ConnectConfig(waitfor.Context(t), cfg)
	if err != nil {
		t.Fatalf("app connect: %v", err)
	}
	return conn
}

func exec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// setup starts a server on a fresh database with one logged-in admin socket.
func setup(t *testing.T, extra map[string]string) (*testServer, *http.Client, *wsClient) {
	t.Helper()
	return setupOn(t, pgtest.NewDB(t), extra)
}

// setupOn is setup on the database at db.
func setupOn(t *testing.T, db string, extra map[string]string) (*testServer, *http.Client, *wsClient) {
	t.Helper()
	s := startServer(t, db, extra)
	createAdmin(t, db, "admin@example.com", "admin")
	c := login(t, s, "admin@example.com", testPassword)
	return s, c, dial(t, s, c)
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
