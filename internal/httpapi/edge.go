package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/shopstream/shopstream/internal/origin"
)

// crossOrigin refuses state-changing requests from another site (403
// cross_site_request). A request with an Origin header is judged by the
// origin policy alone: scheme and host, the same rule as the socket's. One
// without (an old browser, or not a browser: curl, the tail command) is left
// to net/http's CrossOriginProtection, which refuses it when Sec-Fetch-Site
// says it comes from another origin. CrossOriginProtection's own Origin rule
// cannot be used: its trusted origins have no wildcards, and its fallback
// compares Origin's host with Host without the scheme.
func crossOrigin(p *origin.Policy) echo.MiddlewareFunc {
	cop := http.NewCrossOriginProtection()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			var ok bool
			if o := r.Header.Get("Origin"); o != "" {
				ok = p.Allowed(o, r.Host)
			} else {
				ok = cop.Check(r) == nil
			}
			if !ok {
				return newError(http.StatusForbidden, "cross_site_request", "cross-site requests are refused")
			}
			return next(c)
		}
	}
}

// hostCheck answers 421 to a request whose Host is not one of the public URLs
// (when they are configured): a DNS-rebinding page on an attacker's name sends
// that name. The probes stay open to the load balancer's own Host.
func hostCheck(p *origin.Policy) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if p.HostsListed() && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !p.HostAllowed(r.Host) {
				return newError(http.StatusMisdirectedRequest, "unknown_host", "this service is not served under that name")
			}
			return next(c)
		}
	}
}

// bodyLimit refuses a body larger than n bytes: at once by its Content-Length
// (413, and the connection closes rather than read the rest), and while it is
// read when it is chunked.
func bodyLimit(n int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > n {
				c.Response().Header().Set("Connection", "close")
				return newError(http.StatusRequestEntityTooLarge, "body_too_large", "the body is larger than "+strconv.FormatInt(n, 10)+" bytes")
			}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(c.Response(), r.Body, n)
			}
			return next(c)
		}
	}
}

// isTooLarge reports whether err comes from a body past its limit.
func isTooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// contentSecurityPolicy is the dashboard's: its scripts and styles come from
// its own files only (no inline script or style, no eval), it talks to its
// own origin only (fetch and the socket), and no page may frame it.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// securityHeaders sets the browser hardening headers on every response.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		return next(c)
	}
}
