package main

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The steps of the road from a change to its frame, as the server's
// histograms name them (shopstream_delivery_stage_seconds{stage}), and the
// whole road (shopstream_delivery_latency_seconds): a level's breakdown is the
// difference of two scrapes.
var stageNames = []string{"read", "fanout", "wait", "write", "total"}

// stageSummary is one step over one level.
type stageSummary struct {
	Stage    string
	Count    float64
	P50, P99 time.Duration
	Mean     time.Duration
}

// histograms is a scrape of the server's delivery histograms by stage.
type histograms map[string]*dto.Histogram

// scrapeStages reads the server's /metrics; nil when it has none (the
// baseline's relay).
func scrapeStages(srv *server) histograms {
	resp, err := http.Get(srv.base + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	out := histograms{}
	if f := fams["shopstream_delivery_latency_seconds"]; f != nil && len(f.Metric) > 0 {
		out["total"] = f.Metric[0].GetHistogram()
	}
	if f := fams["shopstream_delivery_stage_seconds"]; f != nil {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "stage" {
					out[l.GetValue()] = m.GetHistogram()
				}
			}
		}
	}
	return out
}

// stagesBetween summarises what each stage observed between two scrapes.
func stagesBetween(before, after histograms) []stageSummary {
	if before == nil || after == nil {
		return nil
	}
	var out []stageSummary
	for _, name := range stageNames {
		a, b := after[name], before[name]
		if a == nil || b == nil {
			continue
		}
		n := float64(a.GetSampleCount() - b.GetSampleCount())
		if n <= 0 {
			continue
		}
		var bounds, counts []float64
		for i, bk := range a.Bucket {
			prev := 0.0
			if i < len(b.Bucket) {
				prev = float64(b.Bucket[i].GetCumulativeCount())
			}
			bounds = append(bounds, bk.GetUpperBound())
			counts = append(counts, float64(bk.GetCumulativeCount())-prev)
		}
		out = append(out, stageSummary{Stage: name, Count: n,
			P50:  seconds(bucketQuantile(0.5, bounds, counts, n)),
			P99:  seconds(bucketQuantile(0.99, bounds, counts, n)),
			Mean: seconds((a.GetSampleSum() - b.GetSampleSum()) / n)})
	}
	return out
}

// bucketQuantile estimates quantile q from cumulative bucket counts the way
// Prometheus' histogram_quantile does: linearly within the bucket it falls
// in; past the last finite bound it answers that bound.
func bucketQuantile(q float64, bounds, cum []float64, total float64) float64 {
	rank := q * total
	lower, below := 0.0, 0.0
	for i, ub := range bounds {
		if cum[i] >= rank {
			if math.IsInf(ub, 1) {
				return lower
			}
			in := cum[i] - below
			if in <= 0 {
				return ub
			}
			return lower + (ub-lower)*(rank-below)/in
		}
		lower, below = ub, cum[i]
	}
	return lower
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// stagesLine is a level's breakdown in one log line.
func stagesLine(st []stageSummary) string {
	var parts []string
	for _, s := range st {
		parts = append(parts, fmt.Sprintf("%s p50=%v p99=%v", s.Stage, s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond)))
	}
	return strings.Join(parts, " ")
}
