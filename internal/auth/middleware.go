package auth

import (
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"
)

// Middleware loads the session named by the request's cookie into the request
// context and commits it exactly once: just before the response is written, or
// after the handler when it wrote nothing. (Wrapping scs's LoadAndSave with
// echo.WrapMiddleware commits twice on a handler error.)
func (s *Service) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	sm := s.Sessions
	return func(c echo.Context) error {
		req := c.Request()
		var token string
		if ck, err := req.Cookie(sm.Cookie.Name); err == nil {
			token = ck.Value
		}
		ctx, err := sm.Load(req.Context(), token)
		if err != nil {
			return err
		}
		c.SetRequest(req.WithContext(ctx))
		c.Response().Header().Add("Vary", "Cookie")
		done := false
		var commitErr error
		commit := func() {
			if done {
				return
			}
			done = true
			commitErr = s.commit(c)
		}
		c.Response().Before(commit)
		err = next(c)
		if !c.Response().Committed {
			commit()
			if commitErr != nil && err == nil {
				return commitErr
			}
		}
		return err
	}
}

func (s *Service) commit(c echo.Context) error {
	sm := s.Sessions
	ctx := c.Request().Context()
	w := c.Response().Writer
	switch sm.Status(ctx) {
	case scs.Modified:
		token, expiry, err := sm.Commit(ctx)
		if err != nil {
			s.log.Error("committing session", "err", err)
			return err
		}
		sm.WriteSessionCookie(ctx, w, token, expiry)
	case scs.Destroyed:
		sm.WriteSessionCookie(ctx, w, "", time.Time{})
	}
	return nil
}
