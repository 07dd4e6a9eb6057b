package wsframe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/waitfor"
)

// recordingListener hands out connections that record the length of each
// Write call made on them (one call is one write to the socket).
type recordingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*recordingConn
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &recordingConn{Conn: c}
	l.mu.Lock()
	l.conns = append(l.conns, rc)
	l.mu.Unlock()
	return rc, nil
}

type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	writes []int
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, len(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *recordingConn) Writes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.writes...)
}

// echoServer serves sockets accepted through Wrap on a real loopback
// listener. Each text message is answered with the same message; a binary
// message "N" (a decimal number) with a text message of N bytes.
//
// With record, the server's connections record their writes; they are not
// *net.TCPConn then, so Writer gathers frames in one buffer instead of
// using writev.
func echoServer(t *testing.T, record bool) (*httptest.Server, *recordingListener) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(wrapped(w), r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer conn.CloseNow()
		conn.SetReadLimit(1 << 20)
		ctx := context.Background()
		for {
			typ, b, err := conn.Read(ctx)
			if err != nil {
				return
			}
			if typ == websocket.MessageBinary {
				var n int
				fmt.Sscan(string(b), &n)
				b = bytes.Repeat([]byte("x"), n)
			}
			if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
				return
			}
		}
	}))
	var rl *recordingListener
	if record {
		rl = &recordingListener{Listener: srv.Listener}
		srv.Listener = rl
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, rl
}

// batchFrame is the longest frame shopstream writes: a batch (wsapi's
// maxBatchFrame).
const batchFrame = 256 << 10

// wrapped is Wrap without its Handle.
func wrapped(w http.ResponseWriter) http.ResponseWriter {
	rw, _ := Wrap(w)
	return rw
}

func dial(t *testing.T, srv *httptest.Server) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

// Messages larger than the small read buffer, and several in a row, arrive
// whole and in order, and so do their echoes (written with writev, or, on a
// connection that is not TCP, gathered).
func TestSmallBuffersReadWholeMessages(t *testing.T) {
	for _, record := range []bool{false, true} {
		t.Run(fmt.Sprintf("record=%v", record), func(t *testing.T) { testReadWholeMessages(t, record) })
	}
}

func testReadWholeMessages(t *testing.T, record bool) {
	srv, _ := echoServer(t, record)
	c := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	sizes := []int{0, 1, 125, 126, readBuffer - 1, readBuffer, readBuffer + 1, 4096, 65535, 65536, 300 << 10}
	for _, n := range sizes {
		if err := c.Write(ctx, websocket.MessageText, payload(n)); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range sizes {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != websocket.MessageText || !bytes.Equal(b, payload(n)) {
			t.Fatalf("message of %d bytes came back as %d bytes", n, len(b))
		}
	}
}

// Every frame the server writes, small or up to a batched 256 KiB one, goes
// out in exactly one write to the socket. (The connections here record their
// writes, so frames are gathered; on a *net.TCPConn the frame's first bytes
// and its payload go out in one writev, as TestFrameWriterSplits checks.)
func TestSmallBuffersOneWritePerFrame(t *testing.T) {
	srv, rl := echoServer(t, true)
	c := dial(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	sizes := []int{0, 2, 125, 126, 300, 4000, 4096, 8192, 65535, 65536, 100 << 10, batchFrame}
	var want []int
	for _, n := range sizes {
		if err := c.Write(ctx, websocket.MessageBinary, []byte(fmt.Sprint(n))); err != nil {
			t.Fatal(err)
		}
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != n || strings.Trim(string(b), "x") != "" {
			t.Fatalf("asked for %d bytes, got %d", n, len(b))
		}
		hdr := 2
		switch {
		case n > math.MaxUint16:
			hdr += 8
		case n > 125:
			hdr += 2
		}
		want = append(want, hdr+n)
	}
	rl.mu.Lock()
	sc := rl.conns[0]
	rl.mu.Unlock()
	got := sc.Writes() // got[0] is the 101 response
	if len(got) != len(want)+1 {
		t.Fatalf("server made %d writes after the handshake, want %d: %v", len(got)-1, len(want), got[1:])
	}
	got = got[1:]
	for i := range sizes {
		if got[i] != want[i] {
			t.Errorf("frame %d (%d byte payload) written as %v, want one write of %d", i, sizes[i], got[i], want[i])
		}
	}
	if testing.Verbose() {
		t.Logf("writes: %v", got)
	}
}

// Bytes the client sends right behind its handshake request, before the 101
// arrives, are in net/http's reader when the socket is hijacked: they must be
// carried over, in order, even when they are more than the small read buffer.
func TestSmallBuffersKeepBytesReadBeforeHijack(t *testing.T) {
	for _, sizes := range [][]int{{5}, {100, 200, 3}, {readBuffer + 700, 40}} {
		t.Run(fmt.Sprint(sizes), func(t *testing.T) {
			srv, _ := echoServer(t, false)
			var frames []byte
			for _, n := range sizes {
				frames = append(frames, clientFrame(payload(n))...)
			}
			nc, br := rawHandshake(t, srv, frames)
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(waitfor.Deadline))
			for _, n := range sizes {
				b, err := readServerFrame(br)
				if err != nil {
					t.Fatalf("reading the echo of %d bytes: %v", n, err)
				}
				if !bytes.Equal(b, payload(n)) {
					t.Fatalf("sent %d bytes before the 101, echoed %d bytes: %q", n, len(b), b)
				}
			}
		})
	}
}

// rawHandshake opens a socket by hand and sends after with the request, in
// the same write. It returns the connection and a reader past the 101.
func rawHandshake(tb testing.TB, srv *httptest.Server, after []byte) (net.Conn, *bufio.Reader) {
	tb.Helper()
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n",
		srv.Listener.Addr(), base64.StdEncoding.EncodeToString(key))
	req.Write(after)
	_ = nc.SetDeadline(time.Now().Add(waitfor.Deadline))
	if _, err := nc.Write(req.Bytes()); err != nil { // one write: the request and what follows
		tb.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("handshake: %s", resp.Status)
	}
	_ = nc.SetDeadline(time.Time{})
	return nc, br
}

// clientFrame is a masked, final text frame.
func clientFrame(p []byte) []byte {
	var b []byte
	switch {
	case len(p) < 126:
		b = []byte{0x81, 0x80 | byte(len(p))}
	case len(p) <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16([]byte{0x81, 0x80 | 126}, uint16(len(p)))
	default:
		b = binary.BigEndian.AppendUint64([]byte{0x81, 0x80 | 127}, uint64(len(p)))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, mask[:]...)
	for i, c := range p {
		b = append(b, c^mask[i%4])
	}
	return b
}

// readServerFrame reads one unmasked frame and returns its payload.
func readServerFrame(r *bufio.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return nil, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return nil, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

// callWriter records each Write call.
type callWriter struct {
	calls    [][]byte
	vectored int // calls made with writev
}

func (w *callWriter) Write(p []byte) (int, error) {
	w.calls = append(w.calls, bytes.Clone(p))
	return len(p), nil
}

// writev records the buffers as one call, as writev makes one system call.
func (w *callWriter) writev(_ io.Writer, b *net.Buffers) error {
	w.calls = append(w.calls, bytes.Join(*b, nil))
	w.vectored++
	*b = nil
	return nil
}

// serverFrame is an unmasked frame (masked when mask is set).
func serverFrame(fin bool, opcode byte, n int, mask bool) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	var m byte
	if mask {
		m = 0x80
	}
	var b []byte
	switch {
	case n < 126:
		b = []byte{b0, m | byte(n)}
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16([]byte{b0, m | 126}, uint16(n))
	default:
		b = binary.BigEndian.AppendUint64([]byte{b0, m | 127}, uint64(n))
	}
	if mask {
		b = append(b, 1, 2, 3, 4)
	}
	return append(b, payload(n)...)
}

// However the stream is split into Write calls, Writer writes it
// unchanged, one write (or writev) per FIN frame, with the non-FIN frames
// before it, and holds no buffer between frames.
func TestFrameWriterSplits(t *testing.T) {
	frames := [][]byte{
		serverFrame(true, 1, 0, false),
		serverFrame(true, 1, 5, false),
		serverFrame(true, 9, 125, false),
		serverFrame(true, 1, 126, false),
		serverFrame(false, 1, 300, false), // a message in four frames
		serverFrame(false, 0, 70000, false),
		serverFrame(false, 0, 0, false),
		serverFrame(true, 0, 10, false),
		serverFrame(false, 2, 0, false), // and in two empty ones
		serverFrame(true, 0, 0, false),
		serverFrame(true, 2, 4096, true),
		serverFrame(true, 1, 65536, false),
		serverFrame(true, 8, 2, false),
	}
	var stream []byte
	var want []int // the length of each write
	pending := 0
	for _, f := range frames {
		stream = append(stream, f...)
		pending += len(f)
		if f[0]&0x80 != 0 {
			want = append(want, pending)
			pending = 0
		}
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	vectored := 0
	defer func() {
		if vectored == 0 {
			t.Error("writev never used")
		}
	}()
	for trial := range 600 {
		var cw callWriter
		fw := &Writer{conn: &cw}
		if trial%2 == 1 {
			fw.writev = cw.writev
		}
		rest := stream
		for len(rest) > 0 {
			var k int
			switch trial / 2 % 3 {
			case 0:
				k = 1 + rng.IntN(16) // bufio's 16-byte stage
			case 1:
				k = 1 + rng.IntN(5000)
			default:
				k = 1 + rng.IntN(len(rest))
			}
			k = min(k, len(rest))
			n, err := fw.Write(rest[:k])
			if n != k || err != nil {
				t.Fatalf("Write(%d bytes) = %d, %v", k, n, err)
			}
			rest = rest[k:]
		}
		if got := bytes.Join(cw.calls, nil); !bytes.Equal(got, stream) {
			t.Fatalf("trial %d: the stream changed", trial)
		}
		if len(cw.calls) != len(want) {
			t.Fatalf("trial %d: %d writes, want %d", trial, len(cw.calls), len(want))
		}
		for i, c := range cw.calls {
			if len(c) != want[i] {
				t.Fatalf("trial %d: write %d of %d bytes, want %d", trial, i, len(c), want[i])
			}
		}
		if fw.box != nil || fw.buf != nil {
			t.Fatalf("trial %d: a buffer is held after the last frame", trial)
		}
		vectored += cw.vectored
	}
}

// Through the library's path (a 16-byte bufio.Writer over Writer) a
// frame longer than maxCoalescedFrame still arrives intact; it is not gathered.
func TestFrameWriterOverlongFrame(t *testing.T) {
	var cw callWriter
	bw := bufio.NewWriterSize(&Writer{conn: &cw}, writeStage)
	small := serverFrame(true, 1, 100, false)
	big := serverFrame(true, 2, maxCoalescedFrame+1, false)
	var stream []byte
	for _, f := range [][]byte{small, big[:10], big[10:], small} {
		if _, err := bw.Write(f); err != nil {
			t.Fatal(err)
		}
		stream = append(stream, f...)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := bytes.Join(cw.calls, nil); !bytes.Equal(got, stream) {
		t.Fatal("the stream changed")
	}
	if len(cw.calls[0]) != len(small) || len(cw.calls[len(cw.calls)-1]) != len(small) {
		t.Fatalf("the small frames around the long one were not written whole: first %d, last %d bytes",
			len(cw.calls[0]), len(cw.calls[len(cw.calls)-1]))
	}
}

// A write error is returned, and then returned again without writing.
func TestFrameWriterError(t *testing.T) {
	fw := &Writer{conn: errWriter{}}
	if _, err := fw.Write(serverFrame(true, 1, 3, false)); err != io.ErrClosedPipe {
		t.Fatalf("err = %v", err)
	}
	if _, err := fw.Write(serverFrame(true, 1, 3, false)); err != io.ErrClosedPipe {
		t.Fatalf("second err = %v", err)
	}
	if fw.box != nil {
		t.Fatal("buffer held after the error")
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestFrameClass(t *testing.T) {
	for _, n := range []int{0, 1, minFrameBuf, minFrameBuf + maxFrameHeader, minFrameBuf + maxFrameHeader + 1,
		4096, 4096 + 4, batchFrame + 10, batchFrame + maxFrameHeader + 1, maxCoalescedFrame} {
		c := frameClass(n)
		size := func(c int) int { return minFrameBuf<<c + maxFrameHeader }
		if c >= len(framePool) || size(c) < n || (c > 0 && size(c-1) >= n) {
			t.Errorf("frameClass(%d) = %d (%d bytes)", n, c, size(c))
		}
		if box := getFrameBuf(n); cap(*box) < n || len(*box) != 0 || frameClass(cap(*box)) != c {
			t.Errorf("getFrameBuf(%d): len %d cap %d", n, len(*box), cap(*box))
		}
	}
}

// BenchmarkSocketWrite compares the library's write path through net/http's
// 4 KiB bufio.Writer ("nethttp") with Wrap ("small"), over loopback
// TCP to a peer that only drains the socket.
func BenchmarkSocketWrite(b *testing.B) {
	for _, wrap := range []struct {
		name string
		fn   func(http.ResponseWriter) http.ResponseWriter
	}{
		{"nethttp", func(w http.ResponseWriter) http.ResponseWriter { return w }},
		{"small", wrapped},
	} {
		for _, n := range []int{300, 4 << 10, 8 << 10, 64 << 10, batchFrame} {
			b.Run(fmt.Sprintf("%s/%d", wrap.name, n), func(b *testing.B) {
				conns := make(chan *websocket.Conn, 1)
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					c, err := websocket.Accept(wrap.fn(w), r, nil)
					if err != nil {
						b.Error(err)
						return
					}
					conns <- c
				}))
				defer srv.Close()
				nc, br := rawHandshake(b, srv, nil)
				defer nc.Close()
				go func() { _, _ = io.Copy(io.Discard, br) }()
				sc := <-conns
				defer sc.CloseNow()
				ctx := context.Background()
				msg := payload(n)
				b.SetBytes(int64(n))
				b.ResetTimer()
				for range b.N {
					if err := sc.Write(ctx, websocket.MessageText, msg); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkFrameWriterCPU measures the user-space cost of writing one frame
// the way the library does (header bytes, payload, flush) through a 4 KiB
// bufio.Writer ("bufio4k") and through the 16-byte stage over Writer,
// gathering ("gather") or with writev ("writev"), to a writer that discards.
func BenchmarkFrameWriterCPU(b *testing.B) {
	for _, n := range []int{300, 4 << 10, 8 << 10, 64 << 10, batchFrame} {
		msg := payload(n)
		hdr := serverFrame(true, 1, n, false)
		hdr = hdr[:len(hdr)-n]
		for _, mode := range []string{"bufio4k", "gather", "writev"} {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				var bw *bufio.Writer
				switch mode {
				case "bufio4k":
					bw = bufio.NewWriterSize(discard{}, 4096)
				case "gather":
					bw = bufio.NewWriterSize(&Writer{conn: discard{}}, writeStage)
				case "writev":
					bw = bufio.NewWriterSize(&Writer{conn: discard{}, writev: func(io.Writer, *net.Buffers) error { return nil }}, writeStage)
				}
				b.SetBytes(int64(n))
				for range b.N {
					_ = bw.WriteByte(hdr[0])
					_ = bw.WriteByte(hdr[1])
					_, _ = bw.Write(hdr[2:])
					_, _ = bw.Write(msg)
					_ = bw.Flush()
				}
			})
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// A writer that cannot be hijacked is left alone, for Accept to refuse, with
// a nil Handle whose Writer is nil.
func TestWrapNotHijackable(t *testing.T) {
	rec := httptest.NewRecorder()
	w, h := Wrap(rec)
	if w != http.ResponseWriter(rec) || h != nil {
		t.Fatalf("Wrap wrapped a recorder: %T, %v", w, h)
	}
	if h.Writer() != nil {
		t.Fatal("a nil Handle has a Writer")
	}
}

// Frames without FIN that fill maxCoalescedFrame are written before the frame
// that would not fit with them.
func TestFrameWriterPendingAtLimit(t *testing.T) {
	for _, writev := range []bool{false, true} {
		var cw callWriter
		fw := &Writer{conn: &cw}
		if writev {
			fw.writev = cw.writev
		}
		first := serverFrame(false, 2, maxCoalescedFrame-10, false) // exactly maxCoalescedFrame long
		last := serverFrame(true, 0, 5, false)
		stream := append(bytes.Clone(first), last...)
		for rest := stream; len(rest) > 0; {
			k := min(len(rest), 7000)
			if _, err := fw.Write(rest[:k]); err != nil {
				t.Fatal(err)
			}
			rest = rest[k:]
		}
		if got := bytes.Join(cw.calls, nil); !bytes.Equal(got, stream) {
			t.Fatalf("writev=%v: the stream changed", writev)
		}
		if len(cw.calls) != 2 || len(cw.calls[0]) != len(first)+2 {
			t.Errorf("writev=%v: %d writes, the first of %d bytes", writev, len(cw.calls), len(cw.calls[0]))
		}
		if fw.box != nil {
			t.Errorf("writev=%v: a buffer is held", writev)
		}
	}
}

// Corked, complete frames are held and go out together at Uncork, however the
// stream is split; a frame that is only partly written at Uncork (a pong the
// library writes from another goroutine, say) stays until it is complete.
func TestFrameWriterCork(t *testing.T) {
	frames := [][]byte{
		serverFrame(true, 1, 300, false),
		serverFrame(true, 1, 700, false),
		serverFrame(true, 10, 4, false),
		serverFrame(true, 1, 5000, false),
	}
	var stream []byte
	for _, f := range frames {
		stream = append(stream, f...)
	}
	rng := mrand.New(mrand.NewPCG(3, 4))
	for trial := range 200 {
		var cw callWriter
		fw := &Writer{conn: &cw}
		if trial%2 == 1 {
			fw.writev = cw.writev
		}
		write := func(b []byte) {
			for len(b) > 0 {
				k := min(1+rng.IntN(64), len(b))
				if n, err := fw.Write(b[:k]); n != k || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", k, n, err)
				}
				b = b[k:]
			}
		}
		fw.Cork()
		write(stream[:len(stream)-len(frames[3])]) // three whole frames
		last := frames[3]
		cut := 1 + rng.IntN(len(last)-1)
		write(last[:cut]) // and the start of the fourth
		if len(cw.calls) != 0 {
			t.Fatalf("trial %d: %d writes while corked", trial, len(cw.calls))
		}
		if err := fw.Uncork(); err != nil {
			t.Fatal(err)
		}
		if len(cw.calls) != 1 || len(cw.calls[0]) != len(stream)-len(last) {
			t.Fatalf("trial %d: Uncork wrote %d calls, want the three whole frames in one", trial, len(cw.calls))
		}
		write(last[cut:]) // uncorked now: the fourth goes out when complete
		if got := bytes.Join(cw.calls, nil); !bytes.Equal(got, stream) || len(cw.calls) != 2 {
			t.Fatalf("trial %d: %d writes, stream intact %v", trial, len(cw.calls), bytes.Equal(got, stream))
		}
		if fw.box != nil || fw.buf != nil {
			t.Fatalf("trial %d: a buffer is held after the last frame", trial)
		}
	}
}

// Corked frames are written once they pass corkLimit, so a long queue is sent
// in bounded writes.
func TestFrameWriterCorkLimit(t *testing.T) {
	var cw callWriter
	fw := &Writer{conn: &cw}
	f := serverFrame(true, 1, 1000, false)
	fw.Cork()
	n := 3 * corkLimit / len(f)
	for range n {
		if _, err := fw.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Uncork(); err != nil {
		t.Fatal(err)
	}
	if got, want := len(cw.calls), n*len(f)/corkLimit+1; got < 3 || got > want {
		t.Fatalf("%d writes for %d bytes, want 3..%d", got, n*len(f), want)
	}
	for _, c := range cw.calls {
		if len(c) > corkLimit+len(f) {
			t.Fatalf("a write of %d bytes, over the limit", len(c))
		}
	}
	if got := bytes.Join(cw.calls, nil); !bytes.Equal(got, bytes.Repeat(f, n)) {
		t.Fatal("the stream changed")
	}
}

// The Handle has no Writer before Accept hijacks, and the socket's Writer
// after; Drop closes the connection under the library at once, so that the
// peer's read ends.
func TestHandleGivesWriterAfterAccept(t *testing.T) {
	type result struct {
		before, after *Writer
		err           error
	}
	done := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aw, h := Wrap(w)
		res := result{before: h.Writer()}
		_, res.err = websocket.Accept(aw, r, nil)
		res.after = h.Writer()
		done <- res
	}))
	defer srv.Close()
	c := dial(t, srv)
	res := <-done
	if res.err != nil || res.before != nil || res.after == nil {
		t.Fatalf("before Accept %v, after %v (err %v): want nil, then a Writer", res.before, res.after, res.err)
	}
	res.after.Drop()
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	if _, _, err := c.Read(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("read after Drop: %v (ctx %v), want the connection gone", err, ctx.Err())
	}
}
