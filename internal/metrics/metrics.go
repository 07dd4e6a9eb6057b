// Package metrics defines shopstream's Prometheus metrics (prefix shopstream_) and
// the registry /metrics serves. Components report through the small observer
// interfaces they declare; this package implements them.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Gauges read at scrape time from the running components.
type Sources struct {
	Sockets        func() float64
	Subscriptions  func() map[string]int
	EventsRead     func() float64
	Reconnects     func() float64
	Leader         func() bool
	ListenerUp     func() bool    // the listener's dedicated connection is up (half of /readyz)
	Unattached     func() float64 // configured tables without capture triggers
	DB             DBStats
	DBQueryTimeout time.Duration
}

// DBStats reads the database-side gauges.
type DBStats interface {
	// Gauges returns the inbox backlog (rows, age of the oldest) and
	// pg_notification_queue_usage(), in one query.
	Gauges(ctx context.Context) (backlog int64, oldest time.Duration, notify float64, err error)
}

// Metrics holds the collectors.
type Metrics struct {
	reg           *prometheus.Registry
	framesSent    prometheus.Counter
	latency       prometheus.Histogram
	stages        *prometheus.HistogramVec
	stage         map[string]prometheus.Observer // the stages' histograms, looked up once
	socketsClosed *prometheus.CounterVec
	logins        *prometheus.CounterVec
	db            *dbGauges
}

// New registers every metric, reading gauges from src at scrape time.
func New(src Sources, log *slog.Logger) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		db:  &dbGauges{src: src.DB, timeout: src.DBQueryTimeout, log: log},
		framesSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "shopstream_frames_sent_total",
			Help: "WebSocket frames handed to client sockets to write (a batched frame counts once; counted before the write, so a client never sees an uncounted frame)."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shopstream_delivery_latency_seconds",
			Help:    "Time from a change (its trigger's clock) to its frame being handed to a socket to write.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "shopstream_delivery_stage_seconds",
			Help: "Steps of the road from a change to its frame on a socket: read (the change, by its trigger's clock, to its batch reaching the hub; per event), " +
				"fanout (the batch in the hub to every socket woken; per batch), wait (a socket woken to a writer worker taking it; per socket turn), " +
				"write (a worker's turn writing the socket's queued frames; per socket turn).",
			Buckets: []float64{.00002, .00005, .0001, .0002, .0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10}},
			[]string{"stage"}),
		socketsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shopstream_sockets_closed_total",
			Help: "Sockets closed, by reason: auth, slow, rate, limit, shutdown, client, error."}, []string{"reason"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shopstream_logins_total",
			Help: "Login attempts by outcome: success, invalid, throttled, busy."}, []string{"outcome"}),
	}
	reg.MustRegister(m.framesSent,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shopstream_events_read_total",
			Help: "Events this instance read from the event log and fanned out."}, src.EventsRead), m.latency, m.stages, m.socketsClosed, m.logins,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shopstream_sockets_open", Help: "Open authenticated sockets."}, src.Sockets),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "shopstream_listener_reconnects_total",
			Help: "Times the listener's dedicated connection was re-established."}, src.Reconnects),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shopstream_sequencer_leader",
			Help: "1 on the instance that orders the event log."}, func() float64 {
			if src.Leader() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shopstream_listener_connected",
			Help: "1 while the listener's dedicated connection is up; 0 makes /readyz fail (listener disconnected)."}, func() float64 {
			if src.ListenerUp() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "shopstream_tables_unattached",
			Help: "Configured tables that do not exist or lack the capture triggers (their changes go unseen): run shopstream migrate."}, src.Unattached),
		&scrapeCollector{src: src, db: m.db},
	)
	for _, r := range []string{"auth", "slow", "rate", "limit", "shutdown", "client", "error"} {
		m.socketsClosed.WithLabelValues(r)
	}
	m.stage = map[string]prometheus.Observer{}
	for _, st := range []string{"read", "fanout", "wait", "write"} {
		m.stage[st] = m.stages.WithLabelValues(st)
	}
	for _, o := range []string{"success", "invalid", "throttled", "busy"} {
		m.logins.WithLabelValues(o)
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// FrameSent counts one written frame carrying messages whose changes happened
// at the given times (zero for non-event messages).
func (m *Metrics) FrameSent(now time.Time, changedAt []time.Time) {
	m.framesSent.Inc()
	for _, at := range changedAt {
		if !at.IsZero() {
			m.latency.Observe(now.Sub(at).Seconds())
		}
	}
}

// Stage observes how long one step of delivery took.
func (m *Metrics) Stage(stage string, d time.Duration) {
	o, ok := m.stage[stage]
	if !ok {
		o = m.stages.WithLabelValues(stage)
	}
	o.Observe(d.Seconds())
}

// SocketClosed counts a closed socket.
func (m *Metrics) SocketClosed(reason string) { m.socketsClosed.WithLabelValues(reason).Inc() }

// Login counts a login attempt.
func (m *Metrics) Login(outcome string) { m.logins.WithLabelValues(outcome).Inc() }

// scrapeCollector reads the per-channel subscriptions when scraped, and
// reports the database gauges as last read by RunDB: a scrape runs no query.
type scrapeCollector struct {
	src Sources
	db  *dbGauges
}

var (
	subsDesc    = prometheus.NewDesc("shopstream_subscriptions", "Subscriptions on this instance, by channel.", []string{"channel"}, nil)
	backlogDesc = prometheus.NewDesc("shopstream_inbox_backlog", "Changes committed by writers and not yet ordered into the event log.", nil, nil)
	ageDesc     = prometheus.NewDesc("shopstream_inbox_oldest_age_seconds", "Age of the oldest change waiting to be ordered.", nil, nil)
	notifyDesc  = prometheus.NewDesc("shopstream_notify_queue_usage", "pg_notification_queue_usage(): a full queue makes notifying transactions fail.", nil, nil)
)

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- subsDesc
	ch <- backlogDesc
	ch <- ageDesc
	ch <- notifyDesc
	ch <- updatedDesc
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	for channel, n := range c.src.Subscriptions() {
		ch <- prometheus.MustNewConstMetric(subsDesc, prometheus.GaugeValue, float64(n), channel)
	}
	c.db.collect(ch)
}
