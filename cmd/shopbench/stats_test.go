package main

import (
	"strings"
	"testing"
	"time"
)

func event(id, marker string) string {
	return `{"type":"event","id":"` + id + `","channel":"order_changes","event":"order:updated","data":{"id":42,"order_number":"BENCH-42","notes":"` + marker +
		`","version":3,"changed_fields":{"notes":"` + marker + `"}},"previous":{"notes":"k1"},"timestamp":"2026-01-25T10:30:00.000Z"}`
}

func TestMarkerMatching(t *testing.T) {
	m := []byte(event("1043", "k977"))
	if classify(m) != kindEvent {
		t.Fatal("not classified as event")
	}
	if id, ok := eventID(m); !ok || id != 1043 {
		t.Fatalf("id = %d %v, want 1043 (the event's, not the row's numeric id)", id, ok)
	}
	// data.notes comes first; previous has k1, which must not be picked.
	if seq, ok := eventMarker(m); !ok || seq != 977 {
		t.Fatalf("marker = %d %v, want 977", seq, ok)
	}
	if seq, ok := eventMarker([]byte(event("7", "k12"+runNonce))); !ok || seq != 12 {
		t.Fatalf("marker with the run suffix = %d %v, want 12", seq, ok)
	}
	if _, ok := eventMarker([]byte(event("5", "hello"))); ok {
		t.Fatal("a note that is not a marker matched")
	}
	if _, ok := eventMarker([]byte(strings.Replace(event("5", "k"), `"notes":"k"`, `"notes":null`, 1))); ok {
		t.Fatal("null notes matched")
	}
	if string(eventName(m)) != "order:updated" {
		t.Fatalf("event name %q", eventName(m))
	}
	for msg, want := range map[string]msgKind{
		`{"type":"pong","timestamp":"x"}`:                                kindPong,
		`{"type":"subscribed","channel":"order_changes","position":"1"}`: kindSubscribed,
		`{"type":"connected","message":"m","userId":1}`:                  kindConnected,
		`{"type":"error","code":"rate_limited"}`:                         kindError,
		`{"type":"eventual"}`:                                            kindOther,
	} {
		if got := classify([]byte(msg)); got != want {
			t.Errorf("classify(%s) = %d, want %d", msg, got, want)
		}
	}
}

func TestSplitFrame(t *testing.T) {
	frame := []byte(event("1", "k1") + "\n" + event("2", "k2") + "\n" + event("3", "k3"))
	var got []uint64
	splitFrame(frame, true, func(m []byte) {
		s, _ := eventMarker(m)
		got = append(got, s)
	})
	if len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Fatalf("batch split: %v", got)
	}
	n := 0
	splitFrame([]byte(event("1", "k1")), false, func([]byte) { n++ })
	if n != 1 {
		t.Fatal("non-batch frame split")
	}
}

// A synthetic arrival log: markers 100..109 committed (108 not committed by
// the writer: an error), the socket misses 103, gets 105 twice, and gets a
// stale marker from the previous level.
func TestLossAndDuplicateAccounting(t *testing.T) {
	const base = 100
	committed := make([]int64, 10)
	for i := range committed {
		committed[i] = int64(1000 + i)
	}
	committed[8] = 0
	var tr tracker
	tr.reset(base)
	var dups int
	log := []uint64{100, 101, 102, 104, 105, 105, 106, 107, 109, 99}
	for _, seq := range log {
		if tr.mark(seq) {
			dups++
		}
	}
	if dups != 1 || tr.dups != 1 {
		t.Fatalf("dups = %d/%d, want 1", dups, tr.dups)
	}
	if tr.stale != 1 {
		t.Fatalf("stale = %d, want 1", tr.stale)
	}
	if tr.recv != 8 {
		t.Fatalf("recv = %d, want 8", tr.recv)
	}
	if lost := tr.missing(committed); lost != 1 {
		t.Fatalf("lost = %d, want 1 (only 103; 108 was never committed)", lost)
	}
	// across a level reset the bitmap starts empty
	tr.reset(200)
	if tr.has(200) || tr.missing([]int64{1, 1}) != 2 {
		t.Fatal("reset did not clear")
	}
	// markers far apart grow the bitmap
	tr.mark(200 + 1000)
	if !tr.has(1200) || tr.has(1199) {
		t.Fatal("bitmap growth")
	}
}

func TestSocketHandleCountsFrames(t *testing.T) {
	p := &pool{batch: true}
	s := &sock{p: p, sample: true, pong: make(chan int64, 1)}
	s.tr.reset(10)
	frame := event("1", "k10") + "\n" + event("2", "k11") + "\n" + event("3", "k11") + "\n" + event("2", "k12") + "\n" + `{"type":"pong","timestamp":"x"}`
	s.frame([]byte(frame))
	if p.recv.Load() != 3 || p.dups.Load() != 1 {
		t.Fatalf("recv %d dups %d, want 3 and 1", p.recv.Load(), p.dups.Load())
	}
	if s.orderViol != 1 {
		t.Fatalf("order violations %d, want 1 (id 2 after 3)", s.orderViol)
	}
	if len(s.arr) != 3 {
		t.Fatalf("sampled %d arrivals, want 3", len(s.arr))
	}
	select {
	case <-s.pong:
	default:
		t.Fatal("pong not signalled")
	}
	if lost := s.tr.missing([]int64{1, 1, 1, 1}); lost != 1 {
		t.Fatalf("lost = %d, want 1 (k13)", lost)
	}
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := summarize(d)
	if s.P50 != 50*time.Millisecond || s.P90 != 90*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond || s.N != 100 {
		t.Fatalf("summary %+v", s)
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Fatalf("single value p99 = %v", got)
	}
	if got := summarize(nil); got.N != 0 || got.P99 != 0 {
		t.Fatalf("empty summary %+v", got)
	}
	// nearest rank: p99 of 1000 values is the 990th
	d = d[:0]
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i))
	}
	if got := summarize(d).P99; got != 990 {
		t.Fatalf("p99 of 1..1000 = %d, want 990", got)
	}
	if median([]float64{3, 1, 2, 10}) != 2.5 || median([]float64{5, 1, 3}) != 3 {
		t.Fatal("median")
	}
}

func TestLatencies(t *testing.T) {
	committed := []int64{1000, 0, 3000}
	arr := []arrival{{seq: 50, at: 1500}, {seq: 51, at: 9999}, {seq: 52, at: 4000}, {seq: 49, at: 1}, {seq: 60, at: 1}}
	got := latencies(50, committed, arr, nil)
	if len(got) != 2 || got[0] != 500 || got[1] != 1000 {
		t.Fatalf("latencies %v", got)
	}
}

func TestParsePgbench(t *testing.T) {
	out := "number of transactions actually processed: 12345\nlatency average = 1.2 ms\ntps = 617.250000 (without initial connection time)\n"
	tps, n := parsePgbench(out)
	if tps != 617.25 || n != 12345 {
		t.Fatalf("%v %v", tps, n)
	}
}

func TestLatencySVG(t *testing.T) {
	svg := latencySVG([]levelResult{
		{Sockets: 100, Offered: 100, Achieved: 99, Lat: summary{N: 10, P50: time.Millisecond, P99: 3 * time.Millisecond}},
		{Sockets: 100, Offered: 1000, Achieved: 990, Lat: summary{N: 10, P50: 2 * time.Millisecond, P99: 9 * time.Millisecond}},
		{Sockets: 1000, Batch: true, Offered: 100, Achieved: 99, Lat: summary{N: 10, P50: time.Millisecond, P99: 5 * time.Millisecond}},
	})
	if !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, "polyline") || !strings.HasSuffix(svg, "</svg>\n") {
		t.Fatalf("svg: %s", svg)
	}
}

func TestCPUPerMessage(t *testing.T) {
	levels := []levelResult{
		{Sockets: 100, Offered: 100, Received: 20000, ServerCPU: 0.4, ClientCPU: 0.2, PGCPU: 0.4, Wall: 10},
		{Sockets: 100, Offered: 1000, Received: 100000, ServerCPU: 1, ClientCPU: 1, Wall: 10},
		{Sockets: 1000, Batch: true, Offered: 100, Received: 0, Wall: 10}, // nothing received: no row
	}
	got := cpuPerMessage(levels, 100)
	want := "| 100 | 1 msg/frame | 20.0 | 10.0 | 5% |\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
