package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	stdlog "log"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// jsonLines parses every line of out as one JSON object, failing the test on
// any other line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON log line: %q (%v)", line, err)
			continue
		}
		recs = append(recs, rec)
	}
	return recs
}

// TestJSONLogs runs `serve --dev` with LOG_FORMAT=json through a login, a
// socket, requests and a shutdown: every line it writes, on stderr or stdout,
// is JSON, and durations are numbers of milliseconds. Not parallel: it checks
// that the standard log package, one per process, goes through slog.
func TestJSONLogs(t *testing.T) {
	dbURL := pgtest.NewDB(t)
	env := map[string]string{"DATABASE_URL": dbURL, "LISTEN_ADDR": "127.0.0.1:0", "SHOPSTREAM_ENV": "development",
		"LOG_FORMAT": "json", "LOG_LEVEL": "debug"}
	stderr, stdout := &lockedBuffer{}, &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--dev"}, func(k string) string { return env[k] }, strings.NewReader(""), stdout, stderr)
	}()
	var base string
	waitfor.Until(t, "a JSON log line saying where it serves", func() bool {
		for _, line := range strings.Split(stderr.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				base = "http://" + rec.Addr
				return true
			}
		}
		return false
	})
	s := &testServer{URL: base, DBURL: dbURL, Log: stderr}
	pollReadyz(t, base, http.StatusOK)
	c := login(t, s, devEmail, devPassword)
	for _, p := range []string{"/healthz", "/api/auth/me", "/no-such-page"} {
		get(t, c, base+p).Body.Close()
	}
	if resp, err := http.Head(base + "/readyz"); err == nil {
		resp.Body.Close()
	}
	ws := dial(t, s, c)
	ws.subscribe("order_changes")
	_ = ws.conn.CloseNow()
	waitfor.Until(t, "the socket's close to be logged", func() bool { return strings.Contains(stderr.String(), `"msg":"socket closed"`) })
	stdlog.Print("a line from the standard log package")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(waitfor.Deadline):
		t.Fatal("serve did not stop")
	}

	if stdout.String() != "" {
		t.Errorf("serve wrote to stdout with LOG_FORMAT=json: %q", stdout.String())
	}
	recs := jsonLines(t, stderr.String())
	seen := map[string]int{}
	for _, rec := range recs {
		msg, _ := rec["msg"].(string)
		for k, v := range rec {
			if strings.HasSuffix(k, "_ms") {
				if _, ok := v.(float64); !ok {
					t.Errorf("%s in %q is %T %v, want a number", k, msg, v, v)
				}
			}
			if k == "duration" || k == "timeout" {
				t.Errorf("%q has %s = %v: durations are <key>_ms numbers", msg, k, v)
			}
		}
		switch {
		case msg == "request":
			if d, ok := rec["duration_ms"].(float64); !ok || d < 0 || d > 60_000 {
				t.Errorf("request line without a duration_ms in milliseconds: %v", rec)
			}
			seen["request"]++
		case msg == "socket closed":
			if _, ok := rec["duration_ms"].(float64); !ok {
				t.Errorf("socket closed without duration_ms: %v", rec)
			}
			seen[msg]++
		case strings.HasPrefix(msg, "shopstream listening on http://"), strings.HasPrefix(msg, "development login: "),
			strings.HasPrefix(msg, "schema: "), msg == "stopped":
			seen[strings.Fields(msg)[0]]++
		case msg == "a line from the standard log package":
			if rec["component"] != "stdlog" || rec["level"] != "WARN" {
				t.Errorf("standard log line: %v", rec)
			}
			seen["stdlog"]++
		}
	}
	for _, want := range []string{"request", "socket closed", "shopstream", "development", "schema:", "stopped", "stdlog"} {
		if seen[want] == 0 {
			t.Errorf("no %q line among the JSON logs:\n%s", want, stderr.String())
		}
	}
	if seen["request"] < 5 {
		t.Errorf("%d request lines, want one per request (5 or more)", seen["request"])
	}
}

// TestJSONLogsFatalError: a serve that cannot start says why in JSON, and main
// does not print it again as text.
func TestJSONLogsFatalError(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "postgres://shopstream@127.0.0.1:1/none?sslmode=disable", "LOG_FORMAT": "json"}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
	if err == nil || !errors.As(err, new(*loggedError)) || exitCode(err) != 1 {
		t.Fatalf("serve against a closed port: %v (exit %d), want a logged error, exit 1", err, exitCode(err))
	}
	recs := jsonLines(t, stderr.String())
	if len(recs) == 0 || recs[len(recs)-1]["msg"] != "exiting" || !strings.Contains(recs[len(recs)-1]["err"].(string), "database unreachable") {
		t.Errorf("last line %v, want msg exiting with the error", recs)
	}
}

func TestDurationsInMillis(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := newLogger(configWithLog("json"), &buf)
	log.Info("x", "duration", 1500*time.Microsecond, "timeout", 10*time.Second, "count", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["duration_ms"] != 1.5 || rec["timeout_ms"] != 10000.0 || rec["count"] != 3.0 || rec["duration"] != nil {
		t.Errorf("record %v, want duration_ms 1.5, timeout_ms 10000, count 3", rec)
	}
	buf.Reset()
	newLogger(configWithLog("text"), &buf).Info("x", "duration", 1500*time.Microsecond)
	if !strings.Contains(buf.String(), "duration=1.5ms") {
		t.Errorf("text line %q, want duration=1.5ms", buf.String())
	}
}

func configWithLog(format string) config.Config {
	return config.Config{LogFormat: format, LogLevel: "info"}
}
