package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
)

// apiError is an error with its HTTP status and machine-readable code.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func newError(status int, code, message string) *apiError {
	return &apiError{Status: status, Code: code, Message: message}
}

// codes for echo's own errors (routing, body limits).
var statusCodes = map[int]string{
	http.StatusBadRequest:            "bad_request",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusRequestEntityTooLarge: "body_too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusTooManyRequests:       "too_many_requests",
	http.StatusServiceUnavailable:    "unavailable",
}

// errorHandler writes every error as {"error": code, "message": text}: the one
// place where errors become HTTP statuses.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var ae *apiError
		var he *echo.HTTPError
		switch {
		case errors.As(err, &ae):
		case errors.As(err, &he):
			code, ok := statusCodes[he.Code]
			if !ok {
				code = "error"
			}
			ae = newError(he.Code, code, http.StatusText(he.Code))
		default:
			log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
			ae = newError(http.StatusInternalServerError, "internal_error", "something went wrong on our side")
		}
		if ae.RetryAfter > 0 {
			secs := int(ae.RetryAfter.Seconds() + 0.999)
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		}
		// For HEAD, net/http drops the body and keeps GET's headers.
		_ = c.JSON(ae.Status, map[string]string{"error": ae.Code, "message": ae.Message})
	}
}
