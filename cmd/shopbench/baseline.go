package main

// The baseline is what a team would wire itself instead of shopstream: a
// pg_notify row trigger on public.orders and a minimal relay that LISTENs and
// writes every notification to every socket, over the same WebSocket library.
// It is part of the bench program only (`shopbench relay`), driven by the same
// load client and writers as shopstream, so each shopstream figure can be given
// as a ratio to it in the same run. It has none of shopstream's guarantees (no
// positions, no resume, a notification lost when the relay is down is lost,
// 8,000 bytes per row at most): it is the floor a relay over NOTIFY costs.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/wire"
)

const (
	baselineChannel = "shopbench_baseline"
	baselineCookie  = "shopbench_relay"
	// relayQueue is the messages a socket may lag behind before the relay drops
	// it, as shopstream drops a socket past WS_SEND_QUEUE (the bench raises that
	// to 65,536; the relay gets the same).
	relayQueue = 65536
)

// baselineSQL installs the baseline's trigger: one NOTIFY per changed row,
// carrying the row as JSON.
const baselineSQL = `
CREATE OR REPLACE FUNCTION public.shopbench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('` + baselineChannel + `', json_build_object('event', 'order:deleted', 'data', row_to_json(OLD))::text);
		RETURN OLD;
	END IF;
	PERFORM pg_notify('` + baselineChannel + `', json_build_object('event',
		CASE TG_OP WHEN 'INSERT' THEN 'order:created' ELSE 'order:updated' END, 'data', row_to_json(NEW))::text);
	RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS shopbench_notify ON public.orders;
CREATE TRIGGER shopbench_notify AFTER INSERT OR UPDATE OR DELETE ON public.orders
	FOR EACH ROW EXECUTE FUNCTION public.shopbench_notify();`

const baselineDropSQL = `DROP TRIGGER IF EXISTS shopbench_notify ON public.orders;
DROP FUNCTION IF EXISTS public.shopbench_notify();`

// setBaseline swaps the capture: attached, shopstream's triggers are dropped
// and the baseline's NOTIFY trigger installed; detached, the reverse.
func setBaseline(ctx context.Context, o options, db *pgx.Conn, dbURL string, attached bool) error {
	if attached {
		if err := setTriggers(ctx, o, db, dbURL, false); err != nil {
			return fmt.Errorf("detaching shopstream's triggers: %w", err)
		}
		if _, err := db.Exec(ctx, baselineSQL); err != nil {
			return fmt.Errorf("installing the baseline trigger: %w", err)
		}
		return nil
	}
	if _, err := db.Exec(ctx, baselineDropSQL); err != nil {
		return fmt.Errorf("dropping the baseline trigger: %w", err)
	}
	return setTriggers(ctx, o, db, dbURL, true)
}

// startBaseline swaps in the baseline's trigger and starts its relay.
func startBaseline(ctx context.Context, o options, db *pgx.Conn, dbURL string) (*server, error) {
	if err := setBaseline(ctx, o, db, dbURL, true); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err == nil {
		var relay *server
		if relay, err = startProc(self, []string{"relay"}, dbURL); err == nil {
			return relay, nil
		}
	}
	if derr := setBaseline(ctx, o, db, dbURL, false); derr != nil {
		err = errors.Join(err, derr)
	}
	return nil, fmt.Errorf("starting the baseline relay: %w", err)
}

// relay is the baseline server: `shopbench relay` with DATABASE_URL and
// LISTEN_ADDR in its environment.
type relay struct {
	mu    sync.Mutex
	socks map[*relaySock]struct{}
	seq   atomic.Uint64
}

type relaySock struct {
	c    *websocket.Conn
	out  chan []byte
	gone chan struct{}
	once sync.Once
}

func (s *relaySock) drop() { s.once.Do(func() { close(s.gone) }) }

func runRelay() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", os.Getenv("LISTEN_ADDR"))
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	return serveRelay(ctx, os.Getenv("DATABASE_URL"), ln)
}

// serveRelay serves the baseline on ln until ctx ends.
func serveRelay(ctx context.Context, dbURL string, ln net.Listener) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("relay: connecting: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+baselineChannel); err != nil {
		_ = ln.Close()
		return fmt.Errorf("relay: listening: %w", err)
	}
	r := &relay{socks: map[*relaySock]struct{}{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST "+wire.LoginPath, func(w http.ResponseWriter, _ *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: baselineCookie, Value: "1", Path: "/", HttpOnly: true})
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /ws", r.serveWS)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	lctx, stopListen := context.WithCancel(ctx)
	serveErr, listenErr := make(chan error, 1), make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	go func() { listenErr <- r.listen(lctx, conn) }()
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	case err = <-listenErr:
		listenErr <- err
	}
	stopListen()
	<-listenErr // the connection is closed only after its reader returned
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) || ctx.Err() != nil {
		return nil
	}
	return err
}

// listen relays every notification to every socket: the frame is built once
// and queued on each socket, whose own goroutine writes it.
func (r *relay) listen(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("relay: waiting for a notification: %w", err)
		}
		if len(n.Payload) < 2 || n.Payload[0] != '{' {
			continue
		}
		id := r.seq.Add(1)
		msg := make([]byte, 0, len(n.Payload)+40)
		msg = append(msg, `{"type":"`+wire.TypeEvent+`","id":"`...)
		msg = strconv.AppendUint(msg, id, 10)
		msg = append(msg, `",`...)
		msg = append(msg, n.Payload[1:]...)
		r.mu.Lock()
		for s := range r.socks {
			select {
			case s.out <- msg:
			default:
				s.drop() // too slow: dropped, as shopstream closes with 1013
			}
		}
		r.mu.Unlock()
	}
}

func (r *relay) serveWS(w http.ResponseWriter, req *http.Request) {
	if _, err := req.Cookie(baselineCookie); err != nil {
		http.Error(w, "no session", http.StatusUnauthorized)
		return
	}
	c, err := websocket.Accept(w, req, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := req.Context()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"`+wire.TypeConnected+`"}`)); err != nil {
		return
	}
	if _, _, err := c.Read(ctx); err != nil { // the subscribe: every socket gets every event
		return
	}
	s := &relaySock{c: c, out: make(chan []byte, relayQueue), gone: make(chan struct{})}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"`+wire.TypeSubscribed+`","channel":"`+wire.Channel("order")+`"}`)); err != nil {
		return
	}
	r.mu.Lock()
	r.socks[s] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.socks, s)
		r.mu.Unlock()
	}()
	go func() { // the client's pings and its close
		defer s.drop()
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if bytes.Contains(b, []byte(`"`+wire.TypePing+`"`)) {
				select {
				case s.out <- []byte(`{"type":"` + wire.TypePong + `"}`):
				case <-s.gone:
					return
				}
			}
		}
	}()
	for {
		select {
		case m := <-s.out:
			if err := c.Write(ctx, websocket.MessageText, m); err != nil {
				return
			}
		case <-s.gone:
			c.Close(wire.CloseTryAgainLater, "too slow")
			return
		}
	}
}
