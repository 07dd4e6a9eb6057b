// Package wsframe is the socket's write path under github.com/coder/websocket:
// small per-socket buffers, and a frame writer that puts each frame on the
// wire in one write (or writev) system call and, corked, the frames of one
// drained queue in one. Wrap wraps the ResponseWriter handed to
// websocket.Accept; the Handle it returns gives the socket's Writer once
// Accept has hijacked the connection. WS_FRAME_WRITER=library bypasses the
// package: sockets then use net/http's buffers and the library's own writes.
//
// # What it assumes about github.com/coder/websocket v1.8.15
//
// Checked against the library's source at that version (accept.go, conn.go,
// write.go, frame.go, close.go):
//
//   - Accept hijacks the connection through the ResponseWriter's Hijacker
//     (here, Wrap's), and the server side of the Conn keeps the
//     *bufio.Reader and *bufio.Writer that Hijack returned for the socket's
//     whole life (accept.go: connConfig br, bw; conn.go allocates no other
//     buffer for a server, only a client takes the bufio.Writer's buffer
//     for masking). Accept resets that reader to read its buffered bytes
//     first, then the connection, so the buffers can be small: 128 bytes to
//     read, 16 to write, where net/http would hand over 4 KiB of each.
//   - A frame is written under the Conn's frame write lock (writeFrameMu),
//     by Conn.writeFrame only: the header through bufio.Writer.WriteByte
//     (twice) and Write (the 2 or 8 length bytes; a mask key only on the
//     client side), then the payload with one bufio.Writer.Write, then Flush
//     when the frame has FIN. Messages written with Conn.Write are one FIN
//     frame each (Conn.Writer's: a frame without FIN per Write, then an empty
//     FIN frame at Close); pings, pongs (answered from the read goroutine) and the
//     close frame are FIN control frames through the same path. So the
//     Writer sees the frame's header and first bytes (what the 16-byte stage
//     holds) and then the rest of the payload straight from the caller's
//     slice, and can tell from the header where each frame ends.
//   - A server never masks: payloads reach the Writer as the caller gave
//     them (the Writer parses a mask key all the same, should one come).
//   - The close handshake (Conn.Close) writes the close frame through the
//     same path (a 5 s write timeout), waits up to 5 s for the peer's close
//     frame and then closes the net.Conn. CloseNow during a close in progress
//     waits for it; Writer.Drop closes the net.Conn at once instead, which
//     makes the library's read and write return.
//   - Permessage-deflate stays off (AcceptOptions' default,
//     CompressionDisabled); with it on, frames would still be parsed right
//     (the Writer reads only FIN and the length), but that path is not
//     tested here.
//
// # What breaks if an upgrade changes this, and which test catches it
//
//   - If Accept stops keeping Hijack's bufio.Writer (allocates its own), the
//     Writer sees nothing: frames are still right but written through a
//     4 KiB buffer in several system calls, Cork does nothing, and idle
//     sockets cost more. TestSmallBuffersOneWritePerFrame fails (it counts
//     the server's writes per frame) and the idle-socket memory of
//     `shopbench -scenarios idle` rises.
//   - If Accept stops carrying the bytes net/http read ahead of the hijack,
//     TestSmallBuffersKeepBytesReadBeforeHijack fails.
//   - If the library writes a frame's bytes anywhere but through the
//     bufio.Writer (straight to the net.Conn, say), or writes outside its
//     frame lock, bytes the Writer holds could be overtaken: FuzzFrames (the
//     bytes on the wire, read back by the library's own reader, must be the
//     messages written, byte for byte, under any mix of sizes, Cork/Uncork,
//     pings and close) and TestSmallBuffersReadWholeMessages fail.
//   - If it stops flushing at FIN, the Writer still writes each frame once
//     it is complete (it does not wait for Flush); if it flushes mid-frame,
//     the Writer holds the bytes until the frame is complete. Both keep the
//     stream intact; TestFrameWriterSplits checks any split of the stream.
//
// Should a release break the first assumption in production, set
// WS_FRAME_WRITER=library until this package is fixed.
package wsframe
