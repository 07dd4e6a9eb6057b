package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/shopstream/shopstream/internal/auth"
	"github.com/shopstream/shopstream/internal/events"
)

type handlers struct{ d Deps }

const maxLoginBody = 8 << 10

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (h *handlers) login(c echo.Context) error {
	var req loginRequest
	r := c.Request()
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), r.Body, maxLoginBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if isTooLarge(err) {
			return newError(http.StatusRequestEntityTooLarge, "body_too_large", "the body is larger than 8 KiB")
		}
		return newError(http.StatusBadRequest, "bad_request", "the body must be a JSON object with email and password")
	}
	if req.Email == "" || req.Password == "" {
		return newError(http.StatusBadRequest, "bad_request", "email and password are required")
	}
	u, err := h.d.Auth.Login(r.Context(), req.Email, req.Password, c.RealIP())
	var te *auth.ThrottledError
	switch {
	case errors.As(err, &te):
		h.count("throttled")
		e := newError(http.StatusTooManyRequests, "too_many_attempts", "too many failed logins: try again later")
		e.RetryAfter = te.RetryAfter
		return e
	case errors.Is(err, auth.ErrBusy):
		h.count("busy")
		e := newError(http.StatusServiceUnavailable, "busy", "too many logins in progress: try again in a second")
		e.RetryAfter = time.Second
		return e
	case errors.Is(err, auth.ErrBadEmail):
		return newError(http.StatusBadRequest, "bad_request", "the email is not a valid address")
	case errors.Is(err, auth.ErrInvalidCredentials):
		h.count("invalid")
		return newError(http.StatusUnauthorized, "invalid_credentials", "wrong email or password")
	case err != nil:
		return err
	}
	h.count("success")
	return c.JSON(http.StatusOK, map[string]any{"user": u.Public()})
}

func (h *handlers) count(outcome string) {
	if h.d.Logins != nil {
		h.d.Logins(outcome)
	}
}

func (h *handlers) logout(c echo.Context) error {
	if err := h.d.Auth.Logout(c.Request().Context()); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) me(c echo.Context) error {
	u, ok, err := h.d.Auth.Current(c.Request().Context())
	if err != nil {
		return err
	}
	if !ok {
		return newError(http.StatusUnauthorized, "unauthorized", "log in first")
	}
	return c.JSON(http.StatusOK, map[string]any{"user": u.Public()})
}

// stats shows the user the channels of their role alone: a role that may not
// read transactions does not see their traffic either.
func (h *handlers) stats(c echo.Context) error {
	ctx := c.Request().Context()
	u, ok, err := h.d.Auth.Current(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return newError(http.StatusUnauthorized, "unauthorized", "log in first")
	}
	allowed, err := h.d.Roles.RoleChannels(ctx, u.Role)
	if err != nil && !errors.Is(err, auth.ErrNotFound) {
		return fmt.Errorf("reading role: %w", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"success": true, "data": h.d.Stats.Stats(allowed)})
}

// Stats is what GET /api/v1/ws/stats reports.
type Stats struct {
	events.Stats
	SequencerLeader bool `json:"sequencerLeader"` // this instance orders the event log
	ListenerUp      bool `json:"listenerConnected"`
}

func (h *handlers) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (h *handlers) readyz(c echo.Context) error {
	if h.d.Health.Draining() {
		return newError(http.StatusServiceUnavailable, "not_ready", "shutting down")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
	defer cancel()
	if err := h.d.Health.Ping(ctx); err != nil {
		return newError(http.StatusServiceUnavailable, "not_ready", "database unreachable")
	}
	if !h.d.Health.ListenerConnected() {
		return newError(http.StatusServiceUnavailable, "not_ready", "listener disconnected")
	}
	body := map[string]any{"status": "ready"}
	if w := h.d.Health.Warnings(); len(w) > 0 {
		body["warnings"] = w
	}
	return c.JSON(http.StatusOK, body)
}
