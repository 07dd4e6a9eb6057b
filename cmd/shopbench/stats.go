package main

import (
	"bytes"
	"sort"
	"time"

	"github.com/shopstream/shopstream/internal/wire"
)

// Marker values written into orders.notes are "k<seq>.<run>" with seq a
// decimal number unique over the whole run and run the start time of this run:
// an UPDATE that writes the value a row already has changes nothing and rightly
// makes no event, so a marker must never repeat a value of an earlier run.

var (
	keyType      = []byte(`{"type":"`)
	keyID        = []byte(`"id":"`)
	keyNotes     = []byte(`"notes":`)
	keyEventName = []byte(`"event":"`)

	// the message types, as they follow keyType
	typeEvent      = []byte(wire.TypeEvent + `"`)
	typePong       = []byte(wire.TypePong + `"`)
	typeSubscribed = []byte(wire.TypeSubscribed + `"`)
	typeConnected  = []byte(wire.TypeConnected + `"`)
	typeError      = []byte(wire.TypeError + `"`)
)

// msgKind is what a server message is, told from its first bytes only.
type msgKind int

const (
	kindOther msgKind = iota
	kindEvent
	kindPong
	kindSubscribed
	kindConnected
	kindError
)

// classify tells the message type from the raw bytes (the server writes
// "type" first).
func classify(msg []byte) msgKind {
	if !bytes.HasPrefix(msg, keyType) {
		return kindOther
	}
	rest := msg[len(keyType):]
	switch {
	case bytes.HasPrefix(rest, typeEvent):
		return kindEvent
	case bytes.HasPrefix(rest, typePong):
		return kindPong
	case bytes.HasPrefix(rest, typeSubscribed):
		return kindSubscribed
	case bytes.HasPrefix(rest, typeConnected):
		return kindConnected
	case bytes.HasPrefix(rest, typeError):
		return kindError
	}
	return kindOther
}

// digitsAfter returns the decimal number right after the first occurrence of key.
func digitsAfter(msg, key []byte) (uint64, bool) {
	i := bytes.Index(msg, key)
	if i < 0 {
		return 0, false
	}
	var n uint64
	j := i + len(key)
	start := j
	for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
		n = n*10 + uint64(msg[j]-'0')
		j++
	}
	return n, j > start
}

// eventID returns the event's position: the first `"id":"` is the event's own
// (the row's id in data is a JSON number).
func eventID(msg []byte) (uint64, bool) { return digitsAfter(msg, keyID) }

// eventMarker returns the seq of the marker in the row after the change: the
// first "notes" key is data.notes (changed_fields and previous come after it).
func eventMarker(msg []byte) (uint64, bool) {
	i := bytes.Index(msg, keyNotes)
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len(keyNotes):]
	if !bytes.HasPrefix(rest, []byte(`"k`)) {
		return 0, false
	}
	return digitsAfter(rest, []byte(`"k`))
}

// eventName returns e.g. "product:updated".
func eventName(msg []byte) []byte {
	i := bytes.Index(msg, keyEventName)
	if i < 0 {
		return nil
	}
	rest := msg[i+len(keyEventName):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// splitFrame calls fn for each message of a frame; with batch, messages are
// separated by '\n'.
func splitFrame(frame []byte, batch bool, fn func([]byte)) {
	if !batch {
		fn(frame)
		return
	}
	for len(frame) > 0 {
		i := bytes.IndexByte(frame, '\n')
		if i < 0 {
			fn(frame)
			return
		}
		if i > 0 {
			fn(frame[:i])
		}
		frame = frame[i+1:]
	}
}

// tracker records which markers of one level a socket received, as a bitmap
// relative to base, and counts duplicates.
type tracker struct {
	base  uint64
	bits  []uint64
	recv  int // distinct markers of this level received
	dups  int // markers received more than once
	stale int // markers from before base (an earlier level)
}

func (t *tracker) reset(base uint64) {
	t.base = base
	t.bits = t.bits[:0]
	t.recv, t.dups, t.stale = 0, 0, 0
}

// mark records seq and reports whether it was a duplicate.
func (t *tracker) mark(seq uint64) bool {
	if seq < t.base {
		t.stale++
		return false
	}
	off := seq - t.base
	w := int(off / 64)
	for len(t.bits) <= w {
		t.bits = append(t.bits, 0)
	}
	bit := uint64(1) << (off % 64)
	if t.bits[w]&bit != 0 {
		t.dups++
		return true
	}
	t.bits[w] |= bit
	t.recv++
	return false
}

func (t *tracker) has(seq uint64) bool {
	if seq < t.base {
		return false
	}
	off := seq - t.base
	w := int(off / 64)
	return w < len(t.bits) && t.bits[w]&(uint64(1)<<(off%64)) != 0
}

// missing counts the committed markers (committed[i] for seq base+i) that t lacks.
func (t *tracker) missing(committed []int64) int {
	n := 0
	for i, at := range committed {
		if at != 0 && !t.has(t.base+uint64(i)) {
			n++
		}
	}
	return n
}

// arrival is one sampled marker arrival: seq and the time since the run's epoch.
type arrival struct {
	seq uint64
	at  int64
}

// latencies turns sampled arrivals into commit-to-receive latencies; arrivals
// whose marker has no recorded commit (or is from another level) are skipped.
func latencies(base uint64, committed []int64, arr []arrival, out []time.Duration) []time.Duration {
	for _, a := range arr {
		if a.seq < base || a.seq-base >= uint64(len(committed)) {
			continue
		}
		c := committed[a.seq-base]
		if c == 0 {
			continue
		}
		out = append(out, time.Duration(a.at-c))
	}
	return out
}

// summary holds latency percentiles.
type summary struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

// percentile is nearest-rank on sorted values: the smallest value with at
// least p% of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

func summarize(d []time.Duration) summary {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	s := summary{N: len(d)}
	if len(d) == 0 {
		return s
	}
	s.P50, s.P90, s.P99, s.Max = percentile(d, 50), percentile(d, 90), percentile(d, 99), d[len(d)-1]
	return s
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := append([]float64(nil), v...)
	sort.Float64s(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}
