package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

const tailEmail = "tail@example.com"

// runningTail is `shopstream tail` running in a goroutine, its stdout lines on a
// channel.
type runningTail struct {
	lines  chan string
	stderr *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

// startTail runs tail against s with the password on stdin.
func startTail(t *testing.T, s *testServer, args ...string) *runningTail {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	rt := &runningTail{lines: make(chan string, 1000), stderr: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	getenv := func(string) string { return "" }
	full := append([]string{"tail", "--url", s.URL, "--email", tailEmail}, args...)
	go func() {
		err := run(ctx, full, getenv, strings.NewReader(testPassword+"\n"), pw, rt.stderr)
		pw.Close()
		rt.done <- err
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			rt.lines <- sc.Text()
		}
		close(rt.lines)
	}()
	t.Cleanup(func() { rt.stop(t) })
	return rt
}

// stop ends tail as SIGINT would and checks that it exits cleanly.
func (rt *runningTail) stop(t *testing.T) {
	t.Helper()
	if rt.cancel == nil {
		return
	}
	rt.cancel()
	rt.cancel = nil
	select {
	case err := <-rt.done:
		if err != nil {
			t.Errorf("tail exited with %v\nstderr:\n%s", err, rt.stderr.String())
		}
	case <-time.After(waitfor.Deadline):
		t.Errorf("tail did not stop within %v", waitfor.Deadline)
	}
}

// next returns tail's next stdout line, failing after waitfor.Deadline.
func (rt *runningTail) next(t *testing.T) string {
	t.Helper()
	select {
	case line, ok := <-rt.lines:
		if !ok {
			t.Fatalf("tail's output ended; stderr:\n%s", rt.stderr.String())
		}
		return line
	case <-time.After(waitfor.Deadline):
		t.Fatalf("no line from tail within %s; stderr:\n%s", waitfor.Deadline, rt.stderr.String())
	}
	return ""
}

// nextEvent reads a --json line and decodes it.
func (rt *runningTail) nextEvent(t *testing.T) map[string]any {
	t.Helper()
	line := rt.next(t)
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("tail printed a line that is not JSON %q: %v", line, err)
	}
	return m
}

// waitSubscribed polls the socket statistics until a socket is subscribed to
// channel on s.
func waitSubscribed(t *testing.T, s *testServer, channel string) {
	t.Helper()
	c := login(t, s, tailEmail, testPassword)
	waitfor.Until(t, "tail to subscribe to "+channel, func() bool {
		var st struct {
			Data struct {
				ConnectedClients int            `json:"connectedClients"`
				Subscriptions    map[string]int `json:"subscriptions"`
			} `json:"data"`
		}
		resp, err := c.Get(s.URL + "/api/v1/ws/stats")
		if err != nil {
			t.Fatalf("stats: %v", err)
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("stats: %v", err)
		}
		return st.Data.ConnectedClients >= 1 && st.Data.Subscriptions[channel] >= 1
	})
}

func expectOrderUpdate(t *testing.T, m map[string]any, field, want string) string {
	t.Helper()
	if m["type"] != "event" || m["event"] != "order:updated" || m["channel"] != "order_changes" {
		t.Fatalf("want an order:updated event, got %v", m)
	}
	data, _ := m["data"].(map[string]any)
	changed, _ := data["changed_fields"].(map[string]any)
	if changed[field] != want {
		t.Fatalf("want changed_fields.%s = %q, got %v", field, want, m)
	}
	id, _ := m["id"].(string)
	return id
}

func tailSetup(t *testing.T) (db string, s *testServer) {
	t.Helper()
	db = pgtest.NewDB(t)
	s = startServer(t, db, nil)
	createAdmin(t, db, tailEmail, "admin")
	app := appConn(t, db, "tail-test-setup")
	exec(t, app, `INSERT INTO orders (id, order_number, status) VALUES (7001, 'ORD-7001', 'pending')`)
	return db, s
}

func TestTailPrintsUpdates(t *testing.T) {
	db, s := tailSetup(t)
	rt := startTail(t, s, "--channel", "order_changes", "--json")
	waitSubscribed(t, s, "order_changes")

	app := appConn(t, db, "warehouse-sync")
	exec(t, app, `UPDATE orders SET status = 'processing' WHERE id = 7001`)
	m := rt.nextEvent(t)
	expectOrderUpdate(t, m, "status", "processing")
	if m["actor"] != "warehouse-sync" {
		t.Errorf("actor: got %v", m["actor"])
	}
	prev, _ := m["previous"].(map[string]any)
	if prev["status"] != "pending" {
		t.Errorf("previous.status: got %v", prev["status"])
	}
}

func TestTailResumesAfterServerRestart(t *testing.T) {
	db, s := tailSetup(t)
	rt := startTail(t, s, "--channel", "order_changes", "--json")
	waitSubscribed(t, s, "order_changes")
	app := appConn(t, db, "warehouse-sync")

	exec(t, app, `UPDATE orders SET status = 'processing' WHERE id = 7001`)
	first := expectOrderUpdate(t, rt.nextEvent(t), "status", "processing")

	addr := strings.TrimPrefix(s.URL, "http://")
	s.Stop(t)
	exec(t, app, `UPDATE orders SET status = 'shipped' WHERE id = 7001`)
	s2 := startServer(t, db, map[string]string{"LISTEN_ADDR": addr})

	missed := expectOrderUpdate(t, rt.nextEvent(t), "status", "shipped")
	if a, b := atoi(t, first), atoi(t, missed); b <= a {
		t.Errorf("event ids not increasing: %d then %d", a, b)
	}
	// A marker written after the reconnect: the line before it must be the only
	// copy of the missed update.
	waitSubscribed(t, s2, "order_changes")
	exec(t, app, `UPDATE orders SET notes = 'marker' WHERE id = 7001`)
	expectOrderUpdate(t, rt.nextEvent(t), "notes", "marker")
	if out := rt.stderr.String(); !strings.Contains(out, "reconnecting") || strings.Contains(out, "already seen") {
		t.Errorf("stderr should report the reconnect and no duplicate:\n%s", out)
	}
}

func TestTailLogsInAgainAfterSessionEnds(t *testing.T) {
	db, s := tailSetup(t)
	rt := startTail(t, s, "--channel", "order_changes", "--json")
	waitSubscribed(t, s, "order_changes")
	app := appConn(t, db, "ops")

	// Deleting the sessions closes tail's socket with 1008, as expiry would;
	// tail says it logs in again, and the next change reaches it.
	exec(t, app, `DELETE FROM shopstream.sessions`)
	waitfor.Until(t, "tail to say on stderr that it logs in again", func() bool {
		return strings.Contains(rt.stderr.String(), "logging in again")
	})
	exec(t, app, `UPDATE orders SET status = 'processing' WHERE id = 7001`)
	expectOrderUpdate(t, rt.nextEvent(t), "status", "processing")

	// A disabled user cannot log in again: tail ends with an error.
	runCLI(t, db, "", "admin", "disable", "--email", tailEmail)
	select {
	case err := <-rt.done:
		if err == nil || !strings.Contains(err.Error(), "logging in again failed") {
			t.Fatalf("want a login error, got %v", err)
		}
		rt.cancel()
		rt.cancel = nil
	case <-time.After(waitfor.Deadline):
		t.Fatalf("tail kept running for a disabled user; stderr:\n%s", rt.stderr.String())
	}
}

func TestTailWrongPassword(t *testing.T) {
	_, s := tailSetup(t)
	var out, errOut strings.Builder
	getenv := func(k string) string {
		if k == "SHOPSTREAM_PASSWORD" {
			return "wrong password"
		}
		return ""
	}
	err := run(context.Background(), []string{"tail", "--url", s.URL, "--email", tailEmail}, getenv, strings.NewReader(""), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("want a 401 login error, got %v", err)
	}
}

func TestTailHelp(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"tail", "--help"}, func(string) string { return "" }, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("tail --help: %v", err)
	}
	help := errOut.String()
	for _, want := range []string{"-url", "-email", "-channel", "-filter", "-actions", "-json", "SHOPSTREAM_PASSWORD"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
}

func TestTailFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"tail"},
		{"tail", "--email", "a@b", "--url", "ftp://x"},
		{"tail", "--email", "a@b", "--filter", "[1]"},
	} {
		err := run(context.Background(), args, func(string) string { return "pw" }, strings.NewReader(""), io.Discard, io.Discard)
		if exitCode(err) != 2 {
			t.Errorf("%v: want a usage error, got %v", args, err)
		}
	}
}

func TestTailFormatEvent(t *testing.T) {
	cases := []struct{ msg, want string }{
		{
			`{"type":"event","id":"1043","channel":"order_changes","event":"order:updated",` +
				`"data":{"id":123,"status":"processing","payment_status":"paid","total":99.99,` +
				`"changed_fields":{"status":"processing","payment_status":"paid"}},` +
				`"previous":{"status":"pending","payment_status":"pending"},` +
				`"actor":"warehouse-sync","timestamp":"2026-01-25T10:30:00.000Z"}`,
			"1043 2026-01-25T10:30:00.000Z order:updated id=123 status: pending → processing, payment_status: pending → paid (actor warehouse-sync)",
		},
		{
			`{"type":"event","id":"7","channel":"product_changes","event":"product:created",` +
				`"data":{"id":9,"sku":"TEA-9","name":"Green tea","price":8.5,"stock":3,"active":true},"timestamp":"2026-01-25T10:30:00.000Z"}`,
			`7 2026-01-25T10:30:00.000Z product:created id=9 sku=TEA-9 name="Green tea" price=8.5 stock=3`,
		},
		{
			`{"type":"event","id":"8","channel":"order_changes","event":"order:deleted",` +
				`"data":{"id":5,"status":null},"actor":"admin-tool","timestamp":"2026-01-25T10:30:00.000Z"}`,
			`8 2026-01-25T10:30:00.000Z order:deleted id=5 status=null (actor admin-tool)`,
		},
		{
			`{"type":"event","id":"9","channel":"order_changes","event":"order:truncated","data":{},"timestamp":"2026-01-25T10:30:00.000Z"}`,
			`9 2026-01-25T10:30:00.000Z order:truncated`,
		},
	}
	for _, c := range cases {
		got, err := formatEvent([]byte(c.msg))
		if err != nil {
			t.Fatalf("formatEvent(%s): %v", c.msg, err)
		}
		if got != c.want {
			t.Errorf("formatEvent\n got: %s\nwant: %s", got, c.want)
		}
	}
}

func TestTailBackoffBounds(t *testing.T) {
	for n := 0; n < 40; n++ {
		d := jitteredBackoff(n)
		ceil := min(tailMaxBackoff, tailMinBackoff<<min(n, 5))
		if d < 0 || d >= ceil {
			t.Errorf("attempt %d: %s outside [0, %s)", n, d, ceil)
		}
	}
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("not an event id: %q", s)
	}
	return n
}

// A resume the server refuses ("since" ahead of its log: an instance that has
// not read the newest events yet, or a log a database crash cut short before
// ids were reserved) must not end tail: it says so and goes on live, as the
// dashboard reloads.
func TestTailGoesLiveWhenResumeRefused(t *testing.T) {
	db, s := tailSetup(t)
	rt := startTail(t, s, "--channel", "order_changes", "--json")
	waitSubscribed(t, s, "order_changes")
	app := appConn(t, db, "warehouse-sync")

	exec(t, app, `UPDATE orders SET status = 'processing' WHERE id = 7001`)
	seen := atoi(t, expectOrderUpdate(t, rt.nextEvent(t), "status", "processing"))

	addr := strings.TrimPrefix(s.URL, "http://")
	s.Stop(t)
	// The log loses the event tail saw, and with it the promise that its id
	// was handed out: the restarted server's log ends before tail's "since".
	exec(t, app, `TRUNCATE shopstream.changes_0, shopstream.changes_1, shopstream.changes_2`)
	exec(t, app, `DELETE FROM shopstream.ticks WHERE first_position + count - 1 >= $1`, seen)
	exec(t, app, `UPDATE shopstream.log_state SET last_position = $1, reserved_through = $1`, seen-1)
	s2 := startServer(t, db, map[string]string{"LISTEN_ADDR": addr})

	waitSubscribed(t, s2, "order_changes")
	exec(t, app, `UPDATE orders SET notes = 'after' WHERE id = 7001`)
	expectOrderUpdate(t, rt.nextEvent(t), "notes", "after")
	if out := rt.stderr.String(); !strings.Contains(out, "refused to resume after") {
		t.Errorf("stderr should report the refused resume:\n%s", out)
	}
}
