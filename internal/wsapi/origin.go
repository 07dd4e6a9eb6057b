package wsapi

import (
	"net/http"
)

// originRefused answers 403 to a handshake whose Origin the policy refuses,
// and reports whether it did. A handshake without Origin does not come from a
// browser page (browsers always send it with a WebSocket handshake) and is
// served: cross-site WebSocket hijacking needs a browser. The policy is the
// one the REST guard uses (internal/origin); the library's own check, which
// compares hosts only, is switched off in Accept.
func (h *Handler) originRefused(w http.ResponseWriter, r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || h.cfg.Origins == nil || h.cfg.Origins.Allowed(o, r.Host) {
		return false
	}
	h.log.Info("socket handshake refused", "origin", o, "host", r.Host, "err", "origin not allowed")
	http.Error(w, "origin not allowed", http.StatusForbidden)
	return true
}
