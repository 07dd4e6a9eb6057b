package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/shopstream/shopstream/internal/config"
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
