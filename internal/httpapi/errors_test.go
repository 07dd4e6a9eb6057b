package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// TestErrorHandlerMapsEveryKind: the one place errors become statuses.
func TestErrorHandlerMapsEveryKind(t *testing.T) {
	busy := newError(http.StatusServiceUnavailable, "busy", "try again in a second")
	busy.RetryAfter = 1200 * time.Millisecond
	for _, tc := range []struct {
		err        error
		status     int
		code, msg  string
		retryAfter string
		logged     bool
	}{
		{newError(http.StatusUnauthorized, "invalid_credentials", "wrong email or password"), 401, "invalid_credentials", "wrong email or password", "", false},
		{fmt.Errorf("wrapped: %w", busy), 503, "busy", "try again in a second", "2", false},
		{echo.ErrNotFound, 404, "not_found", "Not Found", "", false},
		{echo.NewHTTPError(http.StatusRequestEntityTooLarge), 413, "body_too_large", "Request Entity Too Large", "", false},
		{echo.NewHTTPError(http.StatusTeapot), 418, "error", "I'm a teapot", "", false},
		{errors.New("pool closed: password=hunter2"), 500, "internal_error", "something went wrong on our side", "", true},
	} {
		var logs bytes.Buffer
		e := echo.New()
		rec := httptest.NewRecorder()
		c := e.NewContext(httptest.NewRequest(http.MethodGet, "/x", nil), rec)
		errorHandler(slog.New(slog.NewTextHandler(&logs, nil)))(tc.err, c)
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%v: body %q: %v", tc.err, rec.Body, err)
		}
		if rec.Code != tc.status || body["error"] != tc.code || body["message"] != tc.msg || len(body) != 2 {
			t.Errorf("%v: %d %v, want %d {error: %s, message: %s}", tc.err, rec.Code, body, tc.status, tc.code, tc.msg)
		}
		if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
			t.Errorf("%v: Retry-After %q, want %q", tc.err, got, tc.retryAfter)
		}
		if logged := strings.Contains(logs.String(), "request failed"); logged != tc.logged {
			t.Errorf("%v: logged %v, want %v (only unexpected errors are logged): %s", tc.err, logged, tc.logged, logs.String())
		}
	}
}

// TestErrorHandlerLeavesACommittedResponse: once the status is written, an
// error cannot change it, and nothing is appended.
func TestErrorHandlerLeavesACommittedResponse(t *testing.T) {
	e := echo.New()
	rec := httptest.NewRecorder()
	c := e.NewContext(httptest.NewRequest(http.MethodGet, "/x", nil), rec)
	if err := c.String(http.StatusOK, "partial"); err != nil {
		t.Fatal(err)
	}
	errorHandler(slog.New(slog.DiscardHandler))(errors.New("late"), c)
	if rec.Code != 200 || rec.Body.String() != "partial" {
		t.Errorf("%d %q, want the response as it was", rec.Code, rec.Body)
	}
}
