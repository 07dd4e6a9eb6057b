package wsframe

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/waitfor"
)

// fuzzServer accepts sockets through Wrap on loopback TCP (the Writer uses
// writev) or, opaque, on connections that are not *net.TCPConn (it
// gathers). Each accepted socket and its Handle go to conns.
type fuzzServer struct {
	srv   *httptest.Server
	conns chan accepted
}

type accepted struct {
	conn *websocket.Conn
	h    *Handle
	err  error
}

// opaqueListener hands out connections that are not *net.TCPConn and pass
// no writev on, so the Writer gathers each frame in one buffer.
type opaqueListener struct{ net.Listener }

func (l opaqueListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	return struct{ net.Conn }{c}, err
}

func newFuzzServer(tb testing.TB, opaque bool) *fuzzServer {
	fs := &fuzzServer{conns: make(chan accepted, 1)}
	fs.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aw, h := Wrap(w)
		conn, err := websocket.Accept(aw, r, nil)
		fs.conns <- accepted{conn, h, err}
	}))
	if opaque {
		fs.srv.Listener = opaqueListener{fs.srv.Listener}
	}
	fs.srv.Start()
	tb.Cleanup(fs.srv.Close)
	return fs
}

// fuzzOp is one step of a fuzzed sequence on the server's socket.
type fuzzOp struct {
	kind byte // 0 text, 1 binary, 2 streamed (Conn.Writer), 3 cork, 4 uncork, 5 ping
	size int  // payload size of a message
	seed byte // payload content
}

// maxFuzzMessage is the largest message a fuzzed sequence writes: past the
// 256 KiB batched frame and the largest coalesced frame, where frames pass
// straight through.
const maxFuzzMessage = 300<<10 + 1000

// decodeOps reads a sequence from data: per step a kind byte, and for a
// message three size bytes (size modulo maxFuzzMessage+1; the kind byte's
// high bits pick a small size instead, as most frames are) and a seed byte.
// The sequence ends with an Uncork and a close, and writes at most 4 MiB.
func decodeOps(data []byte) []fuzzOp {
	var ops []fuzzOp
	total := 0
	for len(data) > 0 && len(ops) < 64 {
		op := fuzzOp{kind: data[0] % 6}
		small := data[0]&0x80 != 0
		data = data[1:]
		if op.kind <= 2 {
			var b [4]byte
			copy(b[1:], data)
			data = data[min(3, len(data)):]
			op.size = int(binary.BigEndian.Uint32(b[:])) % (maxFuzzMessage + 1)
			if small {
				op.size %= 300
			}
			if len(data) > 0 {
				op.seed, data = data[0], data[1:]
			}
			if total += op.size; total > 4<<20 {
				break
			}
		}
		ops = append(ops, op)
	}
	return ops
}

func fuzzPayload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i) + byte(i>>8)*3
	}
	return b
}

// FuzzFrames: for any sequence of messages (0 to 300 KiB, text and binary,
// whole or streamed in frames without FIN), Cork/Uncork groupings and pings,
// then a close, what the Writer puts on the wire is read by the library's
// own reader as exactly those messages, byte for byte, then the close; and
// the Writer holds no buffer once all is written. Each sequence runs over
// TCP (writev) and over a connection that is not TCP (gathered).
func FuzzFrames(f *testing.F) {
	f.Add([]byte{0, 0, 0, 5, 1})                               // one small text message
	f.Add([]byte{3, 0, 0, 0, 10, 1, 1, 0, 20, 2, 4})           // corked: text, binary, uncork
	f.Add([]byte{1, 0, 0xff, 0xff, 7, 1, 0x01, 0x00, 0x00, 3}) // 65535 and 65536 bytes
	f.Add([]byte{1, 0x04, 0x00, 0x0e, 9})                      // 256 KiB + 14: the largest coalesced frame
	f.Add([]byte{0, 0x04, 0xb0, 0x00, 2, 5, 0, 0, 0, 1, 4})    // 300 KiB, ping, a small one
	f.Add([]byte{2, 0, 0x20, 0x00, 5, 3, 2, 0, 0x01, 0x2c, 6, 5, 0, 0, 0, 0, 0, 4})
	f.Add([]byte{3, 0x80, 0, 0, 200, 1, 0x81, 0, 0, 0, 2, 5, 0x82, 0, 0, 130, 3, 4, 5})
	servers := []*fuzzServer{newFuzzServer(f, false), newFuzzServer(f, true)}
	f.Fuzz(func(t *testing.T, data []byte) {
		ops := decodeOps(data)
		for _, fs := range servers {
			runOps(t, fs, ops)
		}
	})
}

// runOps opens a socket on fs, writes ops on the server's side and checks
// what the client reads.
func runOps(t *testing.T, fs *fuzzServer, ops []fuzzOp) {
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	cc, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(fs.srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.CloseNow()
	cc.SetReadLimit(maxFuzzMessage)
	var a accepted
	select {
	case a = <-fs.conns:
		if a.err != nil {
			t.Fatalf("accept: %v", a.err)
		}
	case <-ctx.Done():
		t.Fatal("no socket accepted")
	}
	defer a.conn.CloseNow()
	// The server reads too, as a socket's read loop does: pongs and the
	// client's close frame arrive through its reader.
	a.conn.CloseRead(ctx)
	fw := a.h.Writer()
	if fw == nil {
		t.Fatal("no Writer after Accept")
	}
	type message struct {
		typ websocket.MessageType
		p   []byte
	}
	var want []message
	for _, op := range ops {
		switch op.kind {
		case 0:
			want = append(want, message{websocket.MessageText, fuzzPayload(op.size, op.seed)})
		case 1, 2:
			want = append(want, message{websocket.MessageBinary, fuzzPayload(op.size, op.seed)})
		}
	}
	const closeReason = "fuzzed sequence done"
	readErr := make(chan error, 1)
	go func() {
		for i, m := range want {
			typ, p, err := cc.Read(ctx)
			if err != nil {
				readErr <- fmt.Errorf("reading message %d of %d: %w", i, len(want), err)
				return
			}
			if typ != m.typ || !bytes.Equal(p, m.p) {
				readErr <- fmt.Errorf("message %d: got %v of %d bytes, want %v of %d bytes", i, typ, len(p), m.typ, len(m.p))
				return
			}
		}
		_, _, err := cc.Read(ctx)
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != closeReason {
			readErr <- fmt.Errorf("after the messages: %v, want the close", err)
			return
		}
		readErr <- nil
	}()
	corked := false
	var pings sync.WaitGroup
	var pingErr error
	var pingMu sync.Mutex
	for i, op := range ops {
		var err error
		switch op.kind {
		case 0:
			err = a.conn.Write(ctx, websocket.MessageText, fuzzPayload(op.size, op.seed))
		case 1:
			err = a.conn.Write(ctx, websocket.MessageBinary, fuzzPayload(op.size, op.seed))
		case 2:
			err = writeStreamed(ctx, a.conn, fuzzPayload(op.size, op.seed), int(op.seed))
		case 3:
			fw.Cork()
			corked = true
		case 4:
			err = fw.Uncork()
			corked = false
			pings.Wait()
		case 5:
			if !corked {
				err = a.conn.Ping(ctx)
				break
			}
			// A ping corked is held until Uncork: it waits for its pong
			// on another goroutine, as the socket's pinger does.
			pings.Add(1)
			go func() {
				defer pings.Done()
				if err := a.conn.Ping(ctx); err != nil {
					pingMu.Lock()
					pingErr = err
					pingMu.Unlock()
				}
			}()
		}
		if err != nil {
			t.Fatalf("op %d (%+v): %v", i, op, err)
		}
	}
	if err := fw.Uncork(); err != nil {
		t.Fatal(err)
	}
	pings.Wait()
	if pingErr != nil {
		t.Fatalf("ping: %v", pingErr)
	}
	fw.mu.Lock()
	held := fw.box != nil || len(fw.buf) != 0
	fw.mu.Unlock()
	if held {
		t.Fatal("the Writer holds a buffer with every frame written")
	}
	closed := make(chan error, 1)
	go func() { closed <- a.conn.Close(websocket.StatusNormalClosure, closeReason) }()
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("close handshake: %v", err)
	}
}

// writeStreamed writes p as one message through Conn.Writer, in up to
// three Writes (frames without FIN), then Close (an empty FIN frame).
func writeStreamed(ctx context.Context, conn *websocket.Conn, p []byte, cut int) error {
	w, err := conn.Writer(ctx, websocket.MessageBinary)
	if err != nil {
		return err
	}
	cuts := []int{0, min(cut*97, len(p)), min(cut*1031, len(p)), len(p)}
	for i := 1; i < len(cuts); i++ {
		if cuts[i] < cuts[i-1] {
			continue
		}
		if _, err := w.Write(p[cuts[i-1]:cuts[i]]); err != nil {
			return err
		}
	}
	return w.Close()
}
