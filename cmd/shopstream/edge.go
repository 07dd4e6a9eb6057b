package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/shopstream/shopstream/internal/config"
	"github.com/shopstream/shopstream/internal/connlimit"
)

// httpServer is the public server: its timeouts and its listener, capped at
// HTTP_MAX_CONNECTIONS.
//
// ReadTimeout bounds reading each request, body included; it does not reach an
// upgraded socket: net/http clears the connection's deadlines when the handler
// hijacks it, coder/websocket sets none of its own (it bounds reads and
// writes with contexts), and the socket's frame writer relies on the
// WS_WRITE_TIMEOUT checker, not on deadlines. TestSocketOutlivesReadTimeout
// holds that. There is no WriteTimeout: a response's write is bounded by the
// kernel's TCP timeouts, and the socket has its own.
func httpServer(cfg config.Config, handler http.Handler, ln net.Listener, log *slog.Logger) (*http.Server, *connlimit.Listener) {
	max := cfg.MaxConnections
	if max == 0 {
		var nofile uint64
		max, nofile = connlimit.DefaultMax()
		log.Info("connection cap from the descriptor limit", "max_connections", max, "nofile", nofile)
	}
	if max <= cfg.MaxSockets {
		log.Warn("HTTP_MAX_CONNECTIONS is not above WS_MAX_SOCKETS: the connection cap is reached before the socket cap",
			"max_connections", max, "max_sockets", cfg.MaxSockets)
	}
	cl := connlimit.New(ln, max, log.With("component", "http"))
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnState:         cl.ConnState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return srv, cl
}

// metricsServer serves /metrics alone, on METRICS_ADDR.
func metricsServer(addr string, metrics http.Handler, log *slog.Logger) (*http.Server, net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on METRICS_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return srv, ln, nil
}
