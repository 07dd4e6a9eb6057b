package main

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/shopstream/shopstream/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestBaselineRelay runs the bench's baseline against a real database: its
// trigger replaces shopstream's, a write from another connection reaches a
// socket of the relay as an event frame the load client counts, and detaching
// the baseline leaves no trigger of its own behind.
func TestBaselineRelay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := pgtest.NewDB(t)
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(ctx, `INSERT INTO public.orders (id, order_number) VALUES (9000001, 'T-1')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, baselineSQL); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- serveRelay(rctx, url, ln) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	}()
	c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/ws", &websocket.DialOptions{HTTPHeader: map[string][]string{"Cookie": {baselineCookie + "=1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	read := func() []byte {
		t.Helper()
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if b := read(); classify(b) != kindConnected {
		t.Fatalf("first frame %s", b)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","channel":"order_changes"}`)); err != nil {
		t.Fatal(err)
	}
	if b := read(); classify(b) != kindSubscribed {
		t.Fatalf("second frame %s", b)
	}
	if _, err := db.Exec(ctx, `UPDATE public.orders SET notes = 'k42.run' WHERE id = 9000001`); err != nil {
		t.Fatal(err)
	}
	b := read()
	seq, ok := eventMarker(b)
	id, idOK := eventID(b)
	if classify(b) != kindEvent || !ok || seq != 42 || !idOK || id != 1 || !strings.Contains(string(b), `"event" : "order:updated"`) && !strings.Contains(string(b), `"event":"order:updated"`) {
		t.Fatalf("event frame %s: marker %d %v, id %d %v", b, seq, ok, id, idOK)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if b := read(); classify(b) != kindPong {
		t.Fatalf("answer to ping %s", b)
	}
	if _, err := db.Exec(ctx, baselineDropSQL); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgname = 'shopbench_notify'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("baseline triggers left: %d %v", n, err)
	}
}
