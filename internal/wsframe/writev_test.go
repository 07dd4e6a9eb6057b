package wsframe

import (
	"net"
	"testing"
)

// wrappedConn is a connection wrapper that passes writev on, as
// internal/connlimit's does.
type wrappedConn struct {
	net.Conn
	calls int
}

func (c *wrappedConn) WriteBuffers(b *net.Buffers) (int64, error) {
	c.calls++
	var n int64
	for _, p := range *b {
		n += int64(len(p))
	}
	return n, nil
}

// TestFrameWriterKeepsWritevThroughAWrapper: behind a connection wrapper (the
// connection cap's), a frame whose payload does not fit the pending buffer
// still goes out in one writev, not one write per buffer.
func TestFrameWriterKeepsWritevThroughAWrapper(t *testing.T) {
	c := &wrappedConn{}
	f := newWriter(c)
	if f.writev == nil {
		t.Fatal("no writev through a wrapper with WriteBuffers")
	}
	payload := make([]byte, 8<<10)
	hdr := []byte{0x81, 126, byte(len(payload) >> 8), byte(len(payload))}
	if _, err := f.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(payload); err != nil {
		t.Fatal(err)
	}
	if c.calls != 1 {
		t.Errorf("%d WriteBuffers calls for one frame, want 1", c.calls)
	}
}
