package httpapi

import (
	"fmt"
	"log/slog"
	"mime"
	"net/http"
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
				"status", c.Response().Status, "duration", time.Since(start).Round(time.Microsecond),
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
