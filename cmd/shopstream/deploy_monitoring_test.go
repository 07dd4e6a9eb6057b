package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/shopstream/shopstream/internal/pgtest"
)

const (
	rulesFile     = "../../deploy/prometheus/shopstream-rules.yaml"
	dashboardFile = "../../deploy/grafana/shopstream-dashboard.json"
)

// Series Prometheus makes itself for every target (not on /metrics), and the
// target labels it adds to every series it scrapes.
var (
	prometheusSeries = map[string]bool{"up": true}
	targetLabels     = map[string]bool{"job": true, "instance": true}
)

// catalog is what a real server's /metrics offers: sample name → the label
// sets of its series (histograms as _bucket with le, _sum and _count).
type catalog map[string][]map[string]string

// scrapeCatalog starts a real server with a subscribed socket (so that the
// per-channel gauge has series) and reads its /metrics with Prometheus's own
// text parser.
func scrapeCatalog(t *testing.T) catalog {
	t.Helper()
	s, _, ws := setupOn(t, pgtest.NewDB(t), nil)
	ws.subscribe("order_changes")
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	c := catalog{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				c.add(name+"_sum", ls)
				c.add(name+"_count", ls)
				for _, b := range m.GetHistogram().GetBucket() {
					c.add(name+"_bucket", with(ls, "le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)))
				}
				c.add(name+"_bucket", with(ls, "le", "+Inf"))
			case dto.MetricType_SUMMARY:
				c.add(name+"_sum", ls)
				c.add(name+"_count", ls)
				for _, q := range m.GetSummary().GetQuantile() {
					c.add(name, with(ls, "quantile", strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64)))
				}
			default:
				c.add(name, ls)
			}
		}
	}
	if len(c["shopstream_subscriptions"]) == 0 || len(c["shopstream_delivery_latency_seconds_bucket"]) == 0 {
		t.Fatalf("the scrape lacks shopstream's metrics: %v", c.names())
	}
	return c
}

func (c catalog) add(name string, ls map[string]string) { c[name] = append(c[name], ls) }

func (c catalog) names() []string {
	var out []string
	for n := range c {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func with(ls map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range ls {
		out[a] = b
	}
	return out
}

// checkExpr fails unless every series expr selects exists on /metrics: the
// metric, and for each label matcher some series it matches; and every label
// an aggregation groups by is a label of the metrics it aggregates. It returns
// the metric names expr uses.
func checkExpr(t *testing.T, where string, expr parser.Expr, c catalog) []string {
	t.Helper()
	var used []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			name := selectorName(n.LabelMatchers)
			if name == "" {
				t.Errorf("%s: selector %s names no metric", where, n)
				return nil
			}
			used = append(used, name)
			if prometheusSeries[name] {
				return nil
			}
			series, ok := c[name]
			if !ok {
				t.Errorf("%s: %s is not on /metrics", where, name)
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name == model.MetricNameLabel || targetLabels[m.Name] {
					continue
				}
				if !slices.ContainsFunc(series, func(ls map[string]string) bool { return m.Matches(ls[m.Name]) }) {
					t.Errorf("%s: no series of %s matches %s", where, name, m)
				}
			}
		case *parser.AggregateExpr:
			if n.Without {
				return nil
			}
			for _, l := range n.Grouping {
				if targetLabels[l] || hasLabel(c, n.Expr, l) {
					continue
				}
				t.Errorf("%s: %s groups by %q, a label none of its series has", where, n.Op, l)
			}
		}
		return nil
	})
	return used
}

func selectorName(ms []*labels.Matcher) string {
	for _, m := range ms {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

func hasLabel(c catalog, e parser.Expr, label string) bool {
	for _, sel := range parser.ExtractSelectors(e) {
		for _, ls := range c[selectorName(sel)] {
			if _, ok := ls[label]; ok {
				return true
			}
		}
	}
	return false
}

// TestPrometheusRules: deploy/prometheus/shopstream-rules.yaml passes
// Prometheus's own rule-file parser and validation (unknown fields refused,
// PromQL, templates), every metric and label its expressions use exists on a
// real server's /metrics, and every metric docs/operations.md says to alert
// on has an alert.
func TestPrometheusRules(t *testing.T) {
	t.Parallel()
	c := scrapeCatalog(t)
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.Parse(b, false, model.UTF8Validation, p, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if len(errs) > 0 {
		t.Fatalf("Prometheus refuses %s: %v", rulesFile, errs)
	}
	alerted := map[string]bool{}
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n++
			where := g.Name + "/" + r.Alert + r.Record
			if r.Alert == "" {
				t.Errorf("%s: a recording rule; this file holds alerts", where)
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", where, sev)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", where)
			}
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			for _, m := range checkExpr(t, where, expr, c) {
				alerted[strings.TrimSuffix(m, "_bucket")] = true
			}
		}
	}
	if n == 0 {
		t.Fatal("no rules")
	}
	for _, m := range recommendedAlerts(t) {
		if !alerted[m] {
			t.Errorf("docs/operations.md says when to alert on %s, and no rule uses it", m)
		}
	}
}

// recommendedAlerts reads the metrics table of docs/operations.md: the metrics
// whose "alert when" column is not "informational".
func recommendedAlerts(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `(shopstream_[a-z_]+)(\\{[a-z_]+\\})?` \\| [a-z]+ \\|")
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		cols := strings.Split(sc.Text(), " | ")
		if last := strings.TrimSuffix(cols[len(cols)-1], " |"); last != "informational" {
			out = append(out, m[1])
		}
	}
	if len(out) < 5 {
		t.Fatalf("found %d metrics to alert on in docs/operations.md's table: has its form changed?", len(out))
	}
	return out
}

// TestGrafanaDashboard: deploy/grafana/shopstream-dashboard.json decodes
// strictly into the Grafana Foundation SDK's dashboard types (unknown fields
// refused, Prometheus queries typed), every panel has queries whose PromQL
// parses with template variables replaced, every metric they name is on a real
// server's /metrics, and every shopstream_ metric has a panel.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	c := scrapeCatalog(t)
	rt := cog.NewRuntime()
	rt.RegisterDataqueryVariant(prometheus.VariantConfig())
	rt.RegisterPanelcfgVariant(timeseries.VariantConfig())
	rt.RegisterPanelcfgVariant(stat.VariantConfig())
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	// The classic dashboard JSON, which every Grafana imports; dashboardv2 is
	// Grafana 12's new resource format.
	//lint:ignore SA1019 the file is the classic, importable form
	var d dashboard.Dashboard
	// The SDK returns its list of errors as an error even when it is empty.
	var be cog.BuildErrors
	if err := d.UnmarshalJSONStrict(b); err != nil && (!errors.As(err, &be) || len(be) > 0) {
		t.Fatalf("%s is not a valid Grafana dashboard: %v", dashboardFile, err)
	}
	// And that empty list, returned by each panel's decoder, makes the strict
	// decoder drop the panels it checked: read them with the ordinary one.
	//lint:ignore SA1019 as above
	d = dashboard.Dashboard{}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.Uid == nil || *d.Uid == "" || d.Title == nil || *d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	vars := map[string]string{"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
	for _, v := range d.Templating.List {
		vars[v.Name] = "shopstream"
	}
	vars["instance"] = ".*"
	if _, ok := vars["datasource"]; !ok {
		t.Error("no datasource variable: the dashboard would be bound to one data source")
	}
	ref := regexp.MustCompile(`\$\{?(\w+)\}?`)
	p := parser.NewParser(parser.Options{})
	shown := map[string]bool{}
	var panels []dashboard.Panel
	for _, pr := range d.Panels {
		switch {
		case pr.Panel != nil:
			panels = append(panels, *pr.Panel)
		case pr.RowPanel != nil:
			panels = append(panels, pr.RowPanel.Panels...)
		}
	}
	ids := map[uint32]bool{}
	for _, pn := range panels {
		title := pn.Type + " " + deref(pn.Title)
		if pn.Id != nil {
			if ids[*pn.Id] {
				t.Errorf("%s: id %d repeated", title, *pn.Id)
			}
			ids[*pn.Id] = true
		}
		if pn.Type != "timeseries" && pn.Type != "stat" {
			t.Errorf("%s: panel type %q is not checked here", title, pn.Type)
		}
		if len(pn.Targets) == 0 {
			t.Errorf("%s: no query", title)
		}
		for _, tg := range pn.Targets {
			q, ok := tg.(*prometheus.Dataquery)
			if !ok {
				t.Errorf("%s: a %T query, want Prometheus", title, tg)
				continue
			}
			var unknown []string
			expr := ref.ReplaceAllStringFunc(q.Expr, func(s string) string {
				name := ref.FindStringSubmatch(s)[1]
				if v, ok := vars[name]; ok {
					return v
				}
				unknown = append(unknown, name)
				return s
			})
			if len(unknown) > 0 {
				t.Errorf("%s: query uses undefined variables %v", title, unknown)
				continue
			}
			e, err := p.ParseExpr(expr)
			if err != nil {
				t.Errorf("%s: %q: %v", title, q.Expr, err)
				continue
			}
			for _, m := range checkExpr(t, title, e, c) {
				shown[m] = true
			}
		}
	}
	if len(panels) < 10 {
		t.Errorf("%d panels: the main metrics need more", len(panels))
	}
	for _, name := range c.names() {
		if !strings.HasPrefix(name, "shopstream_") {
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !shown[name] && !shown[base+"_bucket"] && !shown[base] {
			t.Errorf("no panel shows %s", name)
		}
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
