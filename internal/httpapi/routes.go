// Package httpapi is shopstream's HTTP surface on echo: the REST auth endpoints,
// health, stats and metrics, the dashboard's static files and the socket route.
package httpapi

import (
	"context"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/shopstream/shopstream/internal/auth"
	"github.com/shopstream/shopstream/internal/origin"
)

// Health reports what /readyz checks.
type Health interface {
	Ping(ctx context.Context) error // the database answers
	ListenerConnected() bool
	Draining() bool // shutting down: the load balancer should stop sending
	// Warnings are problems that do not stop this instance from serving
	// (a configured table without capture triggers): /readyz lists them.
	Warnings() []string
}

// StatsSource reports the socket statistics as seen by a user who may read
// the channels allowed.
type StatsSource interface {
	Stats(allowed []string) Stats
}

// Roles says which channels a role may read.
type Roles interface {
	RoleChannels(ctx context.Context, role string) ([]string, error)
}

// Deps are the server's collaborators, wired in cmd/shopstream.
type Deps struct {
	Auth           *auth.Service
	Socket         http.Handler
	Health         Health
	Stats          StatsSource
	Roles          Roles
	Metrics        http.Handler         // nil: no /metrics
	Logins         func(outcome string) // counts logins: success, invalid, throttled, busy
	Static         fs.FS                // the dashboard
	OriginsAllowed *origin.Policy       // who may POST (wsapi asks it for the socket); which Host names are served
	MaxBodyBytes   int64                // largest request body: HTTP_MAX_BODY_BYTES, required
	TrustProxy     bool                 // take the client address from X-Forwarded-For (set by a proxy on a private network)
	TrustedProxies []net.IPNet          // whose X-Forwarded-For entries TrustProxy believes
	Log            *slog.Logger
}

// New returns the echo server with every route. A Deps without MaxBodyBytes
// is a programming error: New panics (the limit comes from HTTP_MAX_BODY_BYTES).
func New(d Deps) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// echo's own warnings (a response already committed) go through slog.
	e.Logger.SetHeader("${short_file}:${line}")
	e.Logger.SetOutput(slog.NewLogLogger(d.Log.With("component", "echo").Handler(), slog.LevelWarn).Writer())
	e.IPExtractor = echo.ExtractIPDirect()
	if d.TrustProxy {
		// Only the configured proxies: echo's defaults would also believe any
		// client on a private, loopback or link-local network, which could
		// then choose its own address for the login throttle.
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for i := range d.TrustedProxies {
			opts = append(opts, echo.TrustIPRange(&d.TrustedProxies[i]))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	e.HTTPErrorHandler = errorHandler(d.Log)
	if d.MaxBodyBytes <= 0 {
		panic("httpapi.New: MaxBodyBytes must be positive (config's HTTP_MAX_BODY_BYTES)")
	}
	e.Use(recoverer(d.Log), requestLog(d.Log), securityHeaders, hostCheck(d.OriginsAllowed), bodyLimit(d.MaxBodyBytes))
	h := &handlers{d: d}

	// HEAD answers as GET does, without the body (net/http drops it), for
	// load balancers that probe with HEAD.
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		e.Add(m, "/healthz", h.healthz)
		e.Add(m, "/readyz", h.readyz)
	}
	if d.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(d.Metrics))
	}
	e.GET("/ws", echo.WrapHandler(d.Socket))

	api := e.Group("/api", d.Auth.Middleware)
	// Login takes only JSON, which an HTML form cannot send across sites;
	// logout takes any body or none (curl -X POST). Both refuse other sites.
	api.POST("/auth/login", h.login, crossOrigin(d.OriginsAllowed), requireJSON)
	api.POST("/auth/logout", h.logout, crossOrigin(d.OriginsAllowed))
	api.GET("/auth/me", h.me)
	api.GET("/v1/ws/stats", h.stats)

	e.GET("/*", echo.WrapHandler(staticTypes(http.FileServer(http.FS(d.Static)))))
	return e
}

// staticTypes gives the TypeScript declarations their type: the system's MIME
// table, which http.FileServer reads, maps .ts to video/mp2t (MPEG transport
// streams) or to nothing at all, depending on the machine.
func staticTypes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".d.ts") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		next.ServeHTTP(w, r)
	})
}
