package httpapi

import (
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// requireJSON refuses a body that is not declared application/json (415). HTML
// forms cannot send that type across sites without a CORS preflight.
func requireJSON(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		mt, _, err := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return newError(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
		}
		return next(c)
	}
}

// sameSite refuses state-changing requests from another site: by Sec-Fetch-Site
// where the browser sends it, else by Origin, compared with the request's host and
// the allowed origin patterns.
func sameSite(patterns []string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
				if !originAllowed(r, patterns) {
					return newError(http.StatusForbidden, "cross_site_request", "cross-site requests are refused")
				}
			}
			if r.Header.Get("Origin") != "" && !originAllowed(r, patterns) {
				return newError(http.StatusForbidden, "cross_site_request", "cross-site requests are refused")
			}
			return next(c)
		}
	}
}

// originAllowed reports whether the request's Origin is its own host or matches
// an allowed pattern (path.Match, case-insensitive), as the socket's check does.
func originAllowed(r *http.Request, patterns []string) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); ok {
			return true
		}
	}
	return false
}

// requestLog writes one line per request.
func requestLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			if c.Path() == "/ws" {
				return nil // the socket logs its own open and close
			}
			log.Info("request", "method", c.Request().Method, "path", c.Request().URL.Path,
				"status", c.Response().Status, "duration", time.Since(start).Round(time.Microsecond).String(),
				"remote", c.RealIP())
			return nil
		}
	}
}

// recoverer turns a panic in a handler into a 500, logged with its value.
func recoverer(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.Error("handler panicked", "panic", fmt.Sprint(v), "path", c.Request().URL.Path)
					err = fmt.Errorf("panic: %v", v)
				}
			}()
			return next(c)
		}
	}
}
