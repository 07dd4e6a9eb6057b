package wsframe

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"sync"
)

// Per-socket buffers (see the package comment for why they can be this small):
//
//   - reading: a readBuffer bufio.Reader. Client messages are small JSON, so
//     a whole frame usually arrives in one read; a message longer than the
//     buffer is still read whole (its payload past the buffer is read
//     straight into the library's message buffer).
//   - writing: a writeStage bufio.Writer, just large enough for a frame
//     header, over a Writer that holds a frame's first bytes until the rest
//     arrives and then writes the whole frame at once. A socket holds no write
//     buffer between frames, and every frame up to maxCoalescedFrame (a
//     256 KiB batched one too) goes out in one write or writev system call,
//     where net/http's 4 KiB bufio.Writer made two or more for a frame over
//     4 KiB.
const (
	readBuffer = 128
	writeStage = 16
)

// Handle is what Wrap gives its caller besides the wrapped ResponseWriter:
// the frame writer of the socket, once websocket.Accept has hijacked the
// connection.
type Handle struct {
	fw *Writer // set by Hijack
}

// Writer returns the frame writer under the socket accepted through the
// ResponseWriter that Wrap returned with h. It is nil before the hijack, when
// the hijack failed, and for a nil h (a ResponseWriter that cannot be
// hijacked): the socket then writes through the library's own buffers.
func (h *Handle) Writer() *Writer {
	if h == nil {
		return nil
	}
	return h.fw
}

// Wrap wraps the ResponseWriter passed to websocket.Accept so that its Hijack
// returns the small buffers above, and the returned Handle gives the frame
// writer under them. Everything else is w's own; a w that cannot be hijacked
// is returned as it is, with a nil Handle, for Accept to refuse.
func Wrap(w http.ResponseWriter) (http.ResponseWriter, *Handle) {
	for rw := w; ; {
		switch t := rw.(type) {
		case http.Hijacker:
			hw := &hijackWriter{ResponseWriter: w}
			return hw, &hw.h
		case interface{ Unwrap() http.ResponseWriter }:
			rw = t.Unwrap()
		default:
			return w, nil
		}
	}
}

type hijackWriter struct {
	http.ResponseWriter
	h Handle
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hijacks the wrapped writer's connection and replaces its buffers.
// Bytes that the client sent after its request and that net/http has already
// read stay in front of the new reader; bytes still pending in the old writer
// (net/http flushes it before hijacking) are written first.
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	var br *bufio.Reader
	if n := brw.Reader.Buffered(); n == 0 {
		br = bufio.NewReaderSize(conn, readBuffer)
	} else {
		// Move the buffered bytes into the new reader's buffer (large enough
		// for all of them): Peek makes exactly one Read of the MultiReader,
		// which the bytes.Reader answers whole, so nothing is read from the
		// connection here and the order of the bytes is kept.
		pending, _ := brw.Reader.Peek(n) // n bytes are buffered: no read, no error
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(pending), conn), max(readBuffer, n))
		if _, err := br.Peek(n); err != nil {
			_ = conn.Close()
			return nil, nil, err
		}
	}
	w.h.fw = newWriter(conn)
	bw := bufio.NewWriterSize(w.h.fw, writeStage)
	return conn, bufio.NewReadWriter(br, bw), nil
}

// Writer writes a stream of WebSocket frames to conn, one write per
// frame: it parses each frame header to learn where the frame ends and holds
// the frame's first bytes (the header and what bufio staged with it) until
// the rest arrives. Then it writes them and the rest in one writev when conn
// is a TCP or Unix connection (the payload is not copied), or else gathers
// the frame in one buffer and writes that. Pending bytes live in a buffer from
// framePool, returned as soon as the frame is written: an idle socket holds
// none. A frame without FIN is held and written with the frames after it, up
// to the next FIN (the library flushes at FIN too). Shopstream's frames are
// at most 256 KiB (a batched one) plus a header; one longer than
// maxCoalescedFrame, if ever, goes out as it comes, as through a
// bufio.Writer: its header with what was pending, then its payload. The library calls it under its write lock only;
// mu orders those calls with Cork and Uncork, which the socket's writer calls.
//
// Corked, it holds complete frames too (up to corkLimit bytes), so that the
// frames of one drained queue go out in one write: one system call per
// queue, not per message, when a socket without shopstream.batch falls behind.
type Writer struct {
	mu     sync.Mutex
	corked bool
	conn   io.Writer
	writev func(io.Writer, *net.Buffers) error // nil: gather in buf instead
	box    *[]byte                             // the pooled buffer buf lives in; nil when nothing is pending
	buf    []byte                              // the pending bytes
	// The frame being gathered starts at start in buf. Until its header is
	// complete end is 0; then it is where the frame ends in buf.
	start, end int
	fin        bool  // the frame being gathered is the last of its message
	direct     int   // bytes of an over-long frame still to pass straight through
	err        error // the first write error: the connection is broken
}

func newWriter(conn net.Conn) *Writer {
	f := &Writer{conn: conn}
	switch c := conn.(type) {
	case *net.TCPConn, *net.UnixConn: // net.Buffers.WriteTo uses writev on these
		f.writev = writeBuffers
	case buffersWriter: // a wrapper (internal/connlimit's) that passes writev on
		f.writev = func(_ io.Writer, b *net.Buffers) error { _, err := c.WriteBuffers(b); return err }
	}
	return f
}

// Drop closes the connection under the frame writer at once, whatever the
// library is doing on it (waiting for a close handshake, which CloseNow does
// not interrupt).
func (f *Writer) Drop() {
	if c, ok := f.conn.(io.Closer); ok {
		_ = c.Close()
	}
}

// buffersWriter is a connection wrapper that writes net.Buffers with its
// wrapped connection's writev: net.Buffers.WriteTo uses writev only on the net
// package's own types, and would make one write per buffer on a wrapper.
type buffersWriter interface {
	WriteBuffers(b *net.Buffers) (int64, error)
}

func writeBuffers(w io.Writer, b *net.Buffers) error {
	_, err := b.WriteTo(w)
	return err
}

// corkLimit bounds what a corked Writer holds: past it, the complete
// frames go out.
const corkLimit = 64 << 10

// Cork holds complete frames until Uncork. A control frame is held too: a
// ping's pong, or the answer to a close frame, comes only after Uncork.
func (f *Writer) Cork() {
	f.mu.Lock()
	f.corked = true
	f.mu.Unlock()
}

// Uncork writes the frames held since Cork, in one write.
func (f *Writer) Uncork() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.corked = false
	if f.err != nil {
		return f.err
	}
	return f.flushComplete()
}

// flushComplete writes the complete frames pending (buf[:start]) and keeps the
// start of the frame being gathered, if any.
func (f *Writer) flushComplete() error {
	if f.start == 0 {
		return nil
	}
	if f.start == len(f.buf) && f.end == 0 {
		return f.flush(nil)
	}
	_, err := f.conn.Write(f.buf[:f.start])
	n := copy(f.buf, f.buf[f.start:])
	if f.end != 0 {
		f.end -= f.start
	}
	f.buf, f.start = f.buf[:n], 0
	if err != nil {
		f.err = err
	}
	return err
}

func (f *Writer) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	total := len(p)
	for len(p) > 0 {
		if f.direct > 0 {
			k := min(len(p), f.direct)
			if err := f.flush(p[:k]); err != nil {
				return 0, err
			}
			f.direct -= k
			p = p[k:]
			continue
		}
		if f.end == 0 {
			// Gather the header, no more.
			have := len(f.buf) - f.start
			k := min(len(p), frameHeaderLen(f.buf[f.start:], p)-have)
			f.grow(f.start + have + k)
			f.buf = append(f.buf, p[:k]...)
			p = p[k:]
			hdr := f.buf[f.start:]
			if len(hdr) < frameHeaderLen(hdr, nil) {
				continue // p is used up
			}
			size := len(hdr) + int(min(framePayloadLen(hdr), maxCoalescedFrame))
			if f.start+size > maxCoalescedFrame {
				// Too long to gather: write what is pending, pass the payload on.
				f.direct = int(min(framePayloadLen(hdr), math.MaxInt))
				if err := f.flush(nil); err != nil {
					return 0, err
				}
				continue
			}
			f.end, f.fin = f.start+size, hdr[0]&0x80 != 0
		}
		k := min(len(p), f.end-len(f.buf))
		switch {
		case len(f.buf)+k < f.end: // k == len(p): the frame goes on in the next Write
			if f.writev != nil {
				f.grow(len(f.buf) + k) // the rest is likely to come whole
			} else {
				f.grow(f.end)
			}
			f.buf = append(f.buf, p[:k]...)
		case f.fin && !f.corked: // p[:k] completes the frame: write it with what is pending
			if err := f.flush(p[:k]); err != nil {
				return 0, err
			}
		default: // a frame without FIN, or corked: hold it
			f.grow(f.end)
			f.buf = append(f.buf, p[:k]...)
			f.start, f.end = f.end, 0
			if f.corked && f.start >= corkLimit {
				if err := f.flushComplete(); err != nil {
					return 0, err
				}
			}
		}
		p = p[k:]
	}
	return total, nil
}

// flush writes the pending bytes followed by tail in one call (net.Conn's
// Write and writev retry a partial write themselves), and drops them.
func (f *Writer) flush(tail []byte) error {
	var err error
	switch {
	case len(f.buf) == 0 && len(tail) == 0:
	case len(f.buf) == 0:
		_, err = f.conn.Write(tail)
	case len(tail) <= cap(f.buf)-len(f.buf) || f.writev == nil:
		f.grow(len(f.buf) + len(tail))
		f.buf = append(f.buf, tail...)
		_, err = f.conn.Write(f.buf)
	default:
		err = f.writev(f.conn, &net.Buffers{f.buf, tail})
	}
	f.release()
	if err != nil {
		f.err = err
	}
	return err
}

// grow makes room for n pending bytes, moving them to a larger pooled buffer.
// Appends never reallocate: buf always lives in box.
func (f *Writer) grow(n int) {
	if n <= cap(f.buf) {
		return
	}
	box := getFrameBuf(n)
	buf := append(*box, f.buf...)
	putFrameBuf(f.box)
	f.box, f.buf = box, buf
}

// release returns the buffer: nothing is pending.
func (f *Writer) release() {
	putFrameBuf(f.box)
	f.box, f.buf, f.start, f.end = nil, nil, 0, 0
}

// frameHeaderLen is the length of the frame header that starts with
// hdr and continues with more: 2 bytes, then the extended payload length and
// the masking key as the second byte says.
func frameHeaderLen(hdr, more []byte) int {
	var b1 byte
	switch {
	case len(hdr) >= 2:
		b1 = hdr[1]
	case len(hdr) == 1 && len(more) >= 1:
		b1 = more[0]
	case len(hdr) == 0 && len(more) >= 2:
		b1 = more[1]
	default:
		return 2
	}
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// framePayloadLen is the payload length of the complete frame header hdr.
func framePayloadLen(hdr []byte) uint64 {
	switch l := hdr[1] & 0x7f; l {
	case 126:
		return uint64(hdr[2])<<8 | uint64(hdr[3])
	case 127:
		var n uint64
		for _, b := range hdr[2:10] {
			n = n<<8 | uint64(b)
		}
		return n
	default:
		return uint64(l)
	}
}

// framePool holds frame buffers by size: class c holds *[]byte of length 0
// and capacity minFrameBuf<<c + maxFrameHeader, so that a payload of a power
// of two (a 256 KiB batched frame, say) fits with its header.
var framePool [maxFrameShift - minFrameShift + 1]sync.Pool

const (
	minFrameShift     = 10
	maxFrameShift     = 20
	minFrameBuf       = 1 << minFrameShift
	maxFrameHeader    = 14
	maxCoalescedFrame = 1<<maxFrameShift + maxFrameHeader
)

// frameClass is the class of the smallest buffer that holds n bytes; it is
// past the pool's classes for more than maxCoalescedFrame.
func frameClass(n int) int {
	if n <= minFrameBuf+maxFrameHeader {
		return 0
	}
	return bits.Len(uint(n-maxFrameHeader-1) >> minFrameShift)
}

// getFrameBuf returns an empty buffer with room for n bytes.
func getFrameBuf(n int) *[]byte {
	c := frameClass(n)
	if c >= len(framePool) {
		b := make([]byte, 0, n)
		return &b
	}
	if box, ok := framePool[c].Get().(*[]byte); ok {
		return box
	}
	b := make([]byte, 0, minFrameBuf<<c+maxFrameHeader)
	return &b
}

func putFrameBuf(box *[]byte) {
	if box == nil {
		return
	}
	c := frameClass(cap(*box))
	if c >= len(framePool) || cap(*box) != minFrameBuf<<c+maxFrameHeader {
		return
	}
	*box = (*box)[:0]
	framePool[c].Put(box)
}
