package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/pgtest"
)

// TestHelpListsEveryVariable: `shopstream help` prints config.Vars, each
// variable with its default, the one place the default is written.
func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"help"}, func(string) string { return "" }, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, v := range config.Vars {
		def := v.Default
		if def == "" {
			def = "none"
		}
		line := "  " + v.Name + " "
		i := strings.Index(out.String(), line)
		if i < 0 {
			t.Errorf("help does not list %s", v.Name)
			continue
		}
		got, _, _ := strings.Cut(out.String()[i:], "\n")
		if !strings.HasSuffix(got, "(default: "+def+")") {
			t.Errorf("help's line for %s does not end with its default %q: %s", v.Name, def, got)
		}
	}
}

// TestConfigErrorStopsServe: a bad value stops serve before it touches the
// database, with an error that names the variable and what it wants.
func TestConfigErrorStopsServe(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/none", "DEBUG_ADDR": "localhost", "WS_SEND_QUEUE": "lots"}
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, nil, &out, &out)
	want := "configuration: WS_SEND_QUEUE: want a whole number, got \"lots\""
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	delete(env, "WS_SEND_QUEUE")
	err = run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, nil, &out, &out)
	if want := "configuration: DEBUG_ADDR: want host:port, got \"localhost\""; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

// TestDebugAddrServesPprof: DEBUG_ADDR serves pprof there and not on
// LISTEN_ADDR; a taken DEBUG_ADDR stops serve at start, naming it.
func TestDebugAddrServesPprof(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	s := startServer(t, db, map[string]string{"DEBUG_ADDR": "127.0.0.1:0"})
	if s.DebugURL == "" {
		t.Fatal("serve did not print the pprof address")
	}
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(s.DebugURL + "/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("DEBUG_ADDR /debug/pprof/: %d %.200s", code, body)
	}
	if _, body := get(s.URL + "/debug/pprof/"); strings.Contains(body, "goroutine") {
		t.Error("LISTEN_ADDR serves pprof too")
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	env := map[string]string{"DATABASE_URL": db, "LISTEN_ADDR": "127.0.0.1:0", "DEBUG_ADDR": taken.Addr().String()}
	var out bytes.Buffer
	err = run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, &out)
	if want := "listening on DEBUG_ADDR " + taken.Addr().String() + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("a taken DEBUG_ADDR: err = %v, want it to start with %q", err, want)
	}
}
