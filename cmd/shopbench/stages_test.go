package main

import (
	"math"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func ptr[T any](v T) *T { return &v }

func TestBucketQuantile(t *testing.T) {
	bounds := []float64{0.001, 0.002, 0.005, math.Inf(1)}
	cum := []float64{50, 90, 100, 100}
	for _, c := range []struct{ q, want float64 }{
		{0.5, 0.001},   // the 50th of 100 is the last of the first bucket
		{0.7, 0.0015},  // halfway through the second
		{0.99, 0.0047}, // 9 of 10 into the third
		{0.25, 0.0005}, // a quarter: halfway through the first, from 0
	} {
		if got := bucketQuantile(c.q, bounds, cum, 100); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%.2f = %v, want %v", c.q, got, c.want)
		}
	}
	if got := bucketQuantile(0.99, []float64{0.001, math.Inf(1)}, []float64{1, 100}, 100); got != 0.001 {
		t.Errorf("past the last finite bound: %v, want that bound", got)
	}
}

func hist(sum float64, cum ...uint64) *dto.Histogram {
	h := &dto.Histogram{SampleCount: ptr(cum[len(cum)-1]), SampleSum: ptr(sum)}
	for i, c := range cum {
		h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: ptr(0.001 * float64(i+1)), CumulativeCount: ptr(c)})
	}
	return h
}

func TestStagesBetweenSubtractsTheEarlierScrape(t *testing.T) {
	before := histograms{"write": hist(1, 100, 100)}
	after := histograms{"write": hist(1.3, 100, 200), "read": hist(0, 0, 0)}
	st := stagesBetween(before, after)
	if len(st) != 1 || st[0].Stage != "write" || st[0].Count != 100 {
		t.Fatalf("got %+v, want only write with its 100 new samples", st)
	}
	if st[0].P50 != 1500*time.Microsecond || st[0].Mean != 3*time.Millisecond {
		t.Errorf("p50 %v mean %v, want 1.5ms (all new samples in the second bucket) and 3ms", st[0].P50, st[0].Mean)
	}
	if stagesBetween(nil, after) != nil {
		t.Error("a server without metrics has no breakdown")
	}
}
