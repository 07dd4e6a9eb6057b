package main

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/pgxstore"

	"github.com/shopstream/shopstream/internal/auth"
	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/events"
	"github.com/shopstream/shopstream/internal/httpapi"
	"github.com/shopstream/shopstream/internal/metrics"
	"github.com/shopstream/shopstream/internal/origin"
	"github.com/shopstream/shopstream/internal/postgres"
	"github.com/shopstream/shopstream/internal/wsapi"
	"github.com/shopstream/shopstream/web"
)

// Development login that `serve --dev` (make run) makes sure exists.
const (
	devEmail    = "admin@shopstream.local"
	devPassword = "shopstream-dev"
)

func cmdServe(ctx context.Context, e env, args []string) (err error) {
	fs := newFlagSet("serve", e)
	dev := fs.Bool("dev", false, "development: migrate with the demo schema and make sure a development admin exists")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(e.getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := newLogger(cfg, e.stderr)
	defer routeStdLog(log)()
	if cfg.LogFormat == "json" {
		// No plain line among the JSON ones (docker logs merges stdout and
		// stderr): what serve prints for people becomes a log record, and so
		// does the error it exits with.
		e.stdout = slog.NewLogLogger(log.Handler(), slog.LevelInfo).Writer()
		defer func() {
			if err != nil {
				log.Error("exiting", "err", err)
				err = &loggedError{err}
			}
		}()
	}
	db, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if *dev {
		if err := devSetup(ctx, e, db, cfg); err != nil {
			return err
		}
	}
	return serve(ctx, e, cfg, db, log)
}

// routeStdLog sends what libraries write with the standard log package (scs's
// session cleanup errors) through log, at warn, and returns the undo.
func routeStdLog(log *slog.Logger) func() {
	out, flags := stdlog.Writer(), stdlog.Flags()
	stdlog.SetFlags(0)
	stdlog.SetOutput(slog.NewLogLogger(log.With("component", "stdlog").Handler(), slog.LevelWarn).Writer())
	return func() {
		stdlog.SetOutput(out)
		stdlog.SetFlags(flags)
	}
}

func openDB(ctx context.Context, cfg config.Config) (*postgres.DB, error) {
	db, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.ListenDatabaseURL, "shopstream")
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.Ping(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("database unreachable (DATABASE_URL): %w", err)
	}
	return db, nil
}

func devSetup(ctx context.Context, e env, db *postgres.DB, cfg config.Config) error {
	if err := migrate(ctx, e, db, cfg, true); err != nil {
		return err
	}
	if _, err := db.UserByEmail(ctx, devEmail); errors.Is(err, auth.ErrNotFound) {
		hash, err := auth.HashPassword(devPassword)
		if err != nil {
			return err
		}
		if _, err := db.CreateUser(ctx, devEmail, "Development Admin", "admin", hash); err != nil {
			return fmt.Errorf("creating development admin: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("looking up development admin: %w", err)
	}
	fmt.Fprintf(e.stdout, "development login: %s / %s\n", devEmail, devPassword)
	return printDatabase(ctx, e, db, cfg.DatabaseURL)
}

// shutdownTimeout bounds a graceful shutdown: closing the sockets with 1001,
// then the HTTP server. deploy/kubernetes's termination grace covers it.
const shutdownTimeout = 8 * time.Second

// server is everything serve wires together.
type server struct {
	cfg       config.Config
	db        *postgres.DB
	log       *slog.Logger
	hub       *events.Hub
	listener  *events.Listener
	sequencer *events.Sequencer
	sockets   *wsapi.Handler
	keeper    *wsapi.Keeper
	store     *pgxstore.PostgresStore
	tables    *tableWatch
	draining  atomic.Bool

	metrics   *metrics.Metrics
	metricsLn net.Listener // METRICS_ADDR, or nil
	metricsSv *http.Server
	debugLn   net.Listener // DEBUG_ADDR, or nil
}

// Draining is part of httpapi.Health.
func (s *server) Draining() bool { return s.draining.Load() }

// Stats is what the stats endpoint shows a user who may read allowed: the
// channels, subscriptions and traffic of those channels alone, unless they are
// every channel.
func (s *server) Stats(allowed []string) httpapi.Stats {
	mine := set(allowed)
	var visible func(string) bool
	for _, ch := range channels(s.cfg) {
		if !mine[ch] {
			visible = func(ch string) bool { return mine[ch] }
			break
		}
	}
	return httpapi.Stats{Stats: s.hub.StatsOf(visible), SequencerLeader: s.sequencer.Leading(), ListenerUp: s.listener.Connected()}
}

// Warnings is part of httpapi.Health.
func (s *server) Warnings() []string { return s.tables.Problems() }

// ListenerConnected is part of httpapi.Health.
func (s *server) ListenerConnected() bool { return s.listener.Connected() }

// Ping is part of httpapi.Health.
func (s *server) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

func serve(ctx context.Context, e env, cfg config.Config, db *postgres.DB, log *slog.Logger) error {
	s := &server{cfg: cfg, db: db, log: log, hub: events.NewHub()}
	builder := events.Builder{Columns: columns(cfg), Limits: events.Limits{MaxBytes: cfg.MaxEventBytes}, Log: log.With("component", "log")}
	db.UseLog(cfg.Tables, builder.Build)
	// Secret columns are left out in the writers' transactions: triggers
	// attached with other SECRET_COLUMNS are re-created.
	if atts, err := db.Reattach(ctx, cfg.Tables, cfg.CaptureReplica); err != nil {
		log.Warn("checking the capture triggers failed", "err", err)
	} else {
		for _, a := range atts {
			switch {
			case a.Err != nil:
				log.Warn("could not re-create the capture triggers with the configured secret columns: run shopstream migrate", "table", a.Table, "err", a.Err)
			case a.Status == "attached":
				log.Info("capture triggers re-created with the configured secret columns", "table", a.Table)
			}
		}
	}
	s.listener = events.NewListener(func(ctx context.Context) (events.ListenConn, error) {
		return db.ConnectListener(ctx)
	}, s.hub, log.With("component", "listener"))
	if err := s.listener.Start(ctx); err != nil {
		return fmt.Errorf("%w (has `shopstream migrate` run?)", err)
	}
	s.sequencer = events.NewSequencer(func(ctx context.Context) (events.SequencerConn, error) {
		return db.ConnectSequencer(ctx, cfg.Tables)
	}, events.SequencerConfig{Columns: columns(cfg), Retention: cfg.Retention, PruneEvery: cfg.PruneEvery,
		IdlePoll: cfg.IdlePoll, Limits: events.Limits{MaxBytes: cfg.MaxEventBytes}}, log.With("component", "sequencer"))
	s.sequencer.OnCommit(s.listener.Offer)
	s.tables = &tableWatch{db: db, tables: cfg.Tables, interval: cfg.TableCheck, log: log.With("component", "tables")}
	s.store = pgxstore.NewWithCleanupInterval(db.Pool, 30*time.Second)
	authSvc := auth.NewService(db, auth.NewHashedStore(s.store), auth.SessionConfig{
		CookieName: cfg.CookieName, Secure: cfg.CookieSecure,
		IdleTimeout: cfg.SessionIdleTimeout, Lifetime: cfg.SessionLifetime,
	}, auth.LoginLimits{
		Pair:    auth.Limit(cfg.LoginPair),
		Address: auth.Limit(cfg.LoginAddress),
		Account: auth.Limit(cfg.LoginAccount),
		Hashes:  cfg.LoginHashes, HashQueue: cfg.LoginHashQueue,
	}, log)
	m := metrics.New(metrics.Sources{
		Sockets:        func() float64 { return float64(s.hub.Connected()) },
		Subscriptions:  func() map[string]int { return s.hub.Stats().Subscriptions },
		EventsRead:     func() float64 { return float64(s.hub.Published()) },
		Reconnects:     func() float64 { return float64(s.listener.Reconnects()) },
		Unattached:     func() float64 { return float64(len(s.tables.Problems())) },
		Leader:         s.sequencer.Leading,
		ListenerUp:     s.listener.Connected,
		DB:             db,
		DBQueryTimeout: 2 * time.Second,
	}, log)
	s.metrics = m
	s.hub.ObserveStages(m)
	origins, err := origin.New(cfg.PublicURLs, cfg.AllowedOrigins, cfg.OriginOptions())
	if err != nil {
		return err
	}
	s.keeper = wsapi.NewKeeper(authSvc, s.hub, min(30*time.Second, cfg.SessionIdleTimeout/3), log)
	sockCtx, cancelSockets := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSockets()
	s.sockets = wsapi.NewHandler(sockCtx, wsapi.Config{
		CookieName: cfg.CookieName, Origins: origins, Channels: channels(cfg),
		SendQueue: cfg.SendQueue, SendQueueBytes: cfg.SendQueueBytes, MaxMessageBytes: cfg.MaxMessageBytes,
		WriteTimeout: cfg.WriteTimeout, PingInterval: cfg.PingInterval, Observer: m,
		MaxSockets: cfg.MaxSockets, MaxUserSockets: cfg.MaxUserSockets, Fields: filterFields(cfg, db),
		LibraryFrames: cfg.FrameWriter == "library",
	}, s.hub, authSvc, db, db, s.keeper, log.With("component", "socket"))
	s.listener.OnSessionSignal(s.sockets.Signal)
	mainMetrics := m.Handler()
	if cfg.MetricsAddr != "" {
		mainMetrics = nil // served on METRICS_ADDR only
		if s.metricsSv, s.metricsLn, err = metricsServer(cfg.MetricsAddr, m.Handler(), log); err != nil {
			return err
		}
	}
	handler := httpapi.New(httpapi.Deps{
		Auth: authSvc, Socket: s.sockets, Health: s, Stats: s, Roles: db, Static: web.Static(),
		Metrics: mainMetrics, Logins: m.Login,
		OriginsAllowed: origins, MaxBodyBytes: cfg.MaxBodyBytes, TrustProxy: cfg.TrustProxy, TrustedProxies: cfg.TrustedProxies, Log: log,
	})
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		if s.metricsLn != nil {
			_ = s.metricsLn.Close()
		}
		return fmt.Errorf("listening on %s: %w", cfg.ListenAddr, err)
	}
	if cfg.DebugAddr != "" {
		if s.debugLn, err = net.Listen("tcp", cfg.DebugAddr); err != nil {
			_ = ln.Close()
			if s.metricsLn != nil {
				_ = s.metricsLn.Close()
			}
			return fmt.Errorf("listening on DEBUG_ADDR %s: %w", cfg.DebugAddr, err)
		}
	}
	srv, capped := httpServer(cfg, handler, ln, log)
	m.RefreshDB(ctx) // the first scrape has the database gauges
	return s.run(ctx, e, srv, capped)
}

// run serves until ctx ends, then shuts down in order: stop accepting, close the
// sockets (1001), stop the background loops, and let the caller close the pool.
func (s *server) run(ctx context.Context, e env, srv *http.Server, ln net.Listener) error {
	bg, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	dbGauges := func(ctx context.Context) { s.metrics.RunDB(ctx, s.cfg.MetricsDBInterval) }
	for _, loop := range []func(context.Context){s.listener.Run, s.sequencer.Run, s.keeper.Run, s.sockets.Run, s.tables.Run, dbGauges} {
		wg.Add(1)
		go func() { defer wg.Done(); loop(bg) }()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if s.metricsSv != nil {
		go func() { serveErr <- s.metricsSv.Serve(s.metricsLn) }()
		defer func() { _ = s.metricsSv.Close() }()
		fmt.Fprintf(e.stdout, "metrics listening on http://%s\n", s.metricsLn.Addr())
	}
	if s.debugLn != nil {
		pp := pprofServer()
		go func() { _ = pp.Serve(s.debugLn) }()
		defer func() { _ = pp.Close() }()
		fmt.Fprintf(e.stdout, "pprof listening on http://%s\n", s.debugLn.Addr())
	}
	fmt.Fprintf(e.stdout, "shopstream listening on http://%s\n", ln.Addr())
	s.log.Info("serving", "addr", ln.Addr().String(), "tables", len(s.cfg.Tables))

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serving: %w", err)
	}
	s.log.Info("shutting down")
	s.draining.Store(true)
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// One Shutdown, started first: it closes the listener at once (no new
	// connection), then waits for the requests in flight. It does not see the
	// hijacked sockets, so meanwhile the hub closes them (1001) and they
	// drain; the background loops stop; and only then is Shutdown's end
	// awaited, before the caller closes the pool.
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Shutdown(shutCtx) }()
	s.hub.Shutdown()
	if werr := s.sockets.Wait(shutCtx); werr != nil {
		s.log.Warn("sockets still open at shutdown deadline", "err", werr)
	}
	stopBg()
	wg.Wait()
	s.store.StopCleanup()
	if herr := <-httpDone; herr != nil {
		s.log.Warn("requests still running at shutdown deadline", "err", herr)
	}
	s.log.Info("stopped")
	return err
}

func columns(cfg config.Config) map[string]events.Columns {
	out := map[string]events.Columns{}
	for _, t := range cfg.Tables {
		out[t.Entity] = tableColumns(t)
	}
	return out
}

// tableColumns is what the event builder and the filter check hide of t.
func tableColumns(t config.Table) events.Columns {
	cols := events.Columns{Secret: set(t.Secret), Ignored: set(t.Ignored)}
	if t.Allowed != nil {
		cols.Allowed = set(t.Allowed)
	}
	return cols
}

func channels(cfg config.Config) []string {
	var out []string
	for _, t := range cfg.Tables {
		out = append(out, t.Channel())
	}
	return out
}

func set(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}

// pprofServer serves net/http/pprof, on DEBUG_ADDR: a separate, operator-only
// address, listened on at start like the others (a taken port fails serve).
func pprofServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}

// filterFields lists the columns a filter may name: the table's, less the
// ones events never carry (secret, or outside an allow-list).
func filterFields(cfg config.Config, db *postgres.DB) wsapi.FieldSource {
	return func(ctx context.Context, entity string) ([]string, error) {
		t, ok := cfg.TableFor(entity)
		if !ok {
			return nil, nil
		}
		cols, err := db.TableColumns(ctx, t.Name)
		if err != nil {
			return nil, err
		}
		key, err := db.TableKey(ctx, t.Name)
		if err != nil {
			return nil, err
		}
		hide := tableColumns(t)
		out := cols[:0]
		for _, c := range cols {
			if !hide.Hidden(c, key) {
				out = append(out, c)
			}
		}
		return out, nil
	}
}
