package wsapi

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// What the guard does, and why it trusts no payload.
//
// shopstream_sessions rings when a session row is deleted (its token's hash),
// when a user's sessions end (user:ID: disabled, new password, new role via the
// CLI) and when rights change (roles: a role's channels, a user's role). Any
// database role may NOTIFY any channel, so a payload only says where to look:
//
//   - a socket is closed (1008) only when its session no longer resolves;
//   - a subscription ends (an error forbidden naming the channel; the socket
//     stays open) only when its user's current role no longer grants it.
//
// Signals are gathered and checked in passes on one goroutine, at most one
// pass per guardGap: a flood of forged NOTIFYs costs each instance a bounded
// number of queries (two per pass plus two per session named, guardBudget
// sessions at most), and a real change reaches every socket within a pass or
// two, or within open sessions / guardBudget passes when a flood names them
// all (the keeper's period bounds a session end in any case). Every guardPeriod a pass
// re-reads the rights of every open socket anyway, in case a signal was lost
// while the listener reconnected (the keeper does the same for sessions).
const (
	guardGap    = 100 * time.Millisecond
	guardPeriod = 30 * time.Second
	guardBudget = 256 // sessions checked per pass; the others wait for the next
)

// guard re-checks open sockets against the database on session signals.
type guard struct {
	h    *Handler
	wake chan struct{}
	// passes counts the passes begun. A socket whose rights were read before
	// a pass began, and that was not yet open for that pass to see, asks for
	// another (recheckSince).
	passes atomic.Int64

	mu      sync.Mutex
	hashes  map[string]bool // sessions to check, by their token's hash: true when a signal named it
	users   map[int64]bool  // users whose sessions may have ended
	rights  bool            // roles or a user's role may have changed
	ignored int             // forged signals since the last warning
	warned  time.Time
}

func newGuard(h *Handler) *guard {
	return &guard{h: h, wake: make(chan struct{}, 1), hashes: map[string]bool{}, users: map[int64]bool{}}
}

// Signal takes one shopstream_sessions payload; it returns at once.
func (h *Handler) Signal(payload string) { h.guard.signal(payload) }

func (g *guard) signal(payload string) {
	g.mu.Lock()
	switch {
	case payload == "roles":
		g.rights = true
	case strings.HasPrefix(payload, "user:"):
		id, err := strconv.ParseInt(payload[len("user:"):], 10, 64)
		if err != nil || id <= 0 {
			g.mu.Unlock()
			return
		}
		if len(g.users) < maxPending {
			g.users[id] = true
		} else {
			// Too many to name: check everyone's rights now; the keeper
			// checks every session within its period (30 s at most).
			g.rights = true
		}
	case isTokenHash(payload):
		if len(g.hashes) < maxPending {
			g.hashes[payload] = true
		}
	default:
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// maxPending bounds the sessions and users a pass checks by name: what a
// flood of forged signals can make the guard hold.
const maxPending = 10000

func isTokenHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// run checks on every signal, at most once per guardGap, and re-reads
// everyone's rights every guardPeriod, until ctx ends.
func (g *guard) run(ctx context.Context) {
	period := time.NewTicker(guardPeriod)
	defer period.Stop()
	gap := time.NewTimer(0)
	defer gap.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-period.C:
			g.mu.Lock()
			g.rights = true
			g.mu.Unlock()
		case <-g.wake:
		}
		select { // the least time between passes
		case <-ctx.Done():
			return
		case <-gap.C:
		}
		g.pass(ctx)
		gap.Reset(guardGap)
	}
}

// recheckSince asks for another look at a socket whose session and rights
// were read when n passes had begun, if one began since: that pass may have
// run before the socket was open to be seen.
func (g *guard) recheckSince(n int64, hash string) {
	if g.passes.Load() != n {
		g.mu.Lock()
		if _, ok := g.hashes[hash]; !ok && len(g.hashes) < maxPending {
			g.hashes[hash] = false
		}
		g.mu.Unlock()
		g.signal("roles")
	}
}

// pass checks what the signals since the last pass named.
func (g *guard) pass(ctx context.Context) {
	g.passes.Add(1)
	g.mu.Lock()
	hashes, users, rights := g.hashes, g.users, g.rights
	g.hashes, g.users, g.rights = map[string]bool{}, map[int64]bool{}, false
	g.mu.Unlock()

	open := g.h.openReaders()
	named := map[string]*socketReader{} // one socket per session to check
	for _, s := range open {
		if _, ok := hashes[s.hash]; ok || users[s.user.ID] {
			named[s.token] = s
		}
	}
	forged, checked := 0, 0
	for token, s := range named {
		if checked++; checked > guardBudget {
			// The rest wait for the next pass: a flood that names every
			// open session slows each pass by guardBudget checks at most.
			g.requeue(s.hash, hashes[s.hash] || users[s.user.ID])
			continue
		}
		u, ok, err := g.h.sessions.Resolve(ctx, token)
		switch {
		case err != nil:
			g.h.log.Warn("checking a session signal failed; retrying", "err", err)
			g.signal(s.hash)
		case !ok:
			g.h.hub.SessionEnded(s.hash)
		case u.Role != s.user.Role:
			rights = true // the role changed without ending the session
		case hashes[s.hash] || users[s.user.ID]:
			forged++ // a signal named a live session: a NOTIFY shopstream did not send
		}
	}
	if rights {
		if err := g.checkRights(ctx, open); err != nil {
			g.h.log.Warn("checking socket rights failed; retrying", "err", err)
			g.signal("roles")
		}
	}
	g.noteForged(forged)
}

// checkRights re-reads the channels every open socket's user may read now and
// ends the subscriptions they no longer may.
func (g *guard) checkRights(ctx context.Context, open []*socketReader) error {
	if len(open) == 0 {
		return nil
	}
	seen := map[int64]bool{}
	ids := make([]int64, 0, len(open))
	for _, s := range open {
		if !seen[s.user.ID] {
			seen[s.user.ID] = true
			ids = append(ids, s.user.ID)
		}
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	channels, err := g.h.roles.UserChannels(qctx, ids)
	if err != nil {
		return err
	}
	sets := make(map[int64]map[string]bool, len(ids)) // one read-only set per user
	for _, s := range open {
		set, ok := sets[s.user.ID]
		if !ok {
			set = toSet(channels[s.user.ID])
			sets[s.user.ID] = set
		}
		s.restrict(set)
	}
	return nil
}

// requeue puts a session back for the next pass; claimed is whether a signal
// named it.
func (g *guard) requeue(hash string, claimed bool) {
	g.mu.Lock()
	if was, ok := g.hashes[hash]; (!ok && len(g.hashes) < maxPending) || (ok && claimed && !was) {
		g.hashes[hash] = claimed
	}
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// noteForged counts signals that named a session the database says is alive
// and warns at most once a minute.
func (g *guard) noteForged(n int) {
	if n == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ignored += n
	if time.Since(g.warned) < time.Minute {
		return
	}
	g.h.log.Warn("ignored session-end signals for live sessions: some database role sends NOTIFY shopstream_sessions", "count", g.ignored)
	g.ignored, g.warned = 0, time.Now()
}
