package wsapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/shopstream/shopstream/internal/auth"
	"github.com/shopstream/shopstream/internal/events"
	"github.com/shopstream/shopstream/internal/origin"
	"github.com/shopstream/shopstream/internal/wire"
	"github.com/shopstream/shopstream/internal/wsframe"
)

// Sessions resolves a session token to its user.
type Sessions interface {
	Resolve(ctx context.Context, token string) (auth.User, bool, error)
}

// Roles says which channels a role may read.
type Roles interface {
	RoleChannels(ctx context.Context, role string) ([]string, error)
	// UserChannels returns the channels each user may read now, by the
	// user's current role (none for a user or role that is gone).
	UserChannels(ctx context.Context, ids []int64) (map[int64][]string, error)
}

// Replayer reads past events of one entity for resuming clients.
type Replayer interface {
	ReplayEvents(ctx context.Context, entity string, after, upto int64, limit int) ([]events.Record, int64, error)
	// HandedOut returns the highest position a sequencer may have given an
	// event (the log's last position, or its reservation after a crash).
	HandedOut(ctx context.Context) (int64, error)
}

// Observer receives the socket metrics.
type Observer interface {
	FrameSent(now time.Time, changedAt []time.Time)
	SocketClosed(reason string)
}

type noObserver struct{}

func (noObserver) FrameSent(time.Time, []time.Time) {}
func (noObserver) SocketClosed(string)              {}

// Config is the socket configuration.
type Config struct {
	CookieName       string
	Origins          *origin.Policy // who may open a socket (nil: any Origin)
	Channels         []string       // the channels that exist
	SendQueue        int
	SendQueueBytes   int // bytes queued per socket (0: no bound)
	MaxMessageBytes  int64
	WriteTimeout     time.Duration
	PingInterval     time.Duration
	MaxSubscriptions int     // per connection (default 50)
	MessageRate      float64 // client messages per second (default 20)
	MessageBurst     int     // (default 40)
	MaxSockets       int     // in total on this instance (0: no cap; serve passes WS_MAX_SOCKETS)
	MaxUserSockets   int     // per user on this instance (0: no cap; serve passes WS_MAX_SOCKETS_PER_USER)
	Writers          int     // goroutines writing to sockets (default GOMAXPROCS)
	Fields           FieldSource
	Observer         Observer

	// LibraryFrames makes sockets write through net/http's buffers and the
	// library's own writes instead of internal/wsframe (WS_FRAME_WRITER=library).
	LibraryFrames bool
}

// Handler serves GET /ws.
type Handler struct {
	cfg      Config
	hub      *events.Hub
	sessions Sessions
	roles    Roles
	replayer Replayer
	keeper   *Keeper
	obs      Observer
	fields   *fieldCache
	log      *slog.Logger
	base     context.Context // the server's lifetime: sockets outlive their request
	open     inFlight        // requests and sockets being served, for Wait
	guard    *guard
	writers  *writers

	mu      sync.Mutex
	total   int
	perUser map[int64]int
	clients map[*client]*socketReader // open sockets, for the pinger and the guard
	slots   int                       // sockets tracked so far: the next one's ping slot
	sets    map[string]map[string]bool
}

// Run pings every open socket each PingInterval until ctx ends; a peer that does
// not answer is dropped. It also closes, every second, the sockets whose
// running write has outlasted WriteTimeout (a peer that stopped reading), and
// checks the session signals (Signal) against the database.
func (h *Handler) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		every(ctx, min(time.Second, h.cfg.WriteTimeout), h.expireWrites)
	}()
	go func() {
		defer wg.Done()
		h.guard.run(ctx)
	}()
	tick := 0
	every(ctx, max(h.cfg.PingInterval/pingSlots, time.Millisecond), func() {
		for _, c := range h.dueClients(tick % pingSlots) {
			go c.ping(h.cfg.PingInterval)
		}
		tick++
	})
	wg.Wait()
}

// pingSlots spreads the pings over the interval: each socket is pinged once
// per PingInterval, in its own slot of pingSlots, so that 10,000 sockets do
// not start 10,000 ping goroutines (and their stacks) at the same moment.
const pingSlots = 30

// dueClients returns the open sockets whose ping slot is slot.
func (h *Handler) dueClients(slot int) []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	var due []*client
	for c := range h.clients {
		if c.pingSlot == slot {
			due = append(due, c)
		}
	}
	return due
}

func (h *Handler) openClients() []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	open := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		open = append(open, c)
	}
	return open
}

func (h *Handler) openReaders() []*socketReader {
	h.mu.Lock()
	defer h.mu.Unlock()
	open := make([]*socketReader, 0, len(h.clients))
	for _, s := range h.clients {
		open = append(open, s)
	}
	return open
}

// stopAll ends every open socket: the server's lifetime ended (see client.stop).
func (h *Handler) stopAll() {
	for _, c := range h.openClients() {
		c.stop()
	}
}

// expireWrites drops the sockets whose write has run longer than WriteTimeout.
func (h *Handler) expireWrites() {
	cutoff := time.Now().Add(-h.cfg.WriteTimeout).UnixNano()
	for _, c := range h.openClients() {
		if c.writeExpired(cutoff) {
			h.log.Debug("socket write timed out", "timeout", h.cfg.WriteTimeout)
			_ = c.conn.CloseNow()
			c.stop()
		}
	}
}

func every(ctx context.Context, period time.Duration, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// Wait waits until every socket has ended, or ctx ends; from its call on, new
// sockets are refused with 503.
func (h *Handler) Wait(ctx context.Context) error {
	return h.open.wait(ctx)
}

// NewHandler returns the socket handler. base bounds every socket's lifetime.
func NewHandler(base context.Context, cfg Config, hub *events.Hub, sessions Sessions, roles Roles, replayer Replayer, keeper *Keeper, log *slog.Logger) *Handler {
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = 50
	}
	if cfg.MessageRate <= 0 {
		cfg.MessageRate, cfg.MessageBurst = 20, 40
	}
	obs := cfg.Observer
	if obs == nil {
		obs = noObserver{}
	}
	h := &Handler{cfg: cfg, hub: hub, sessions: sessions, roles: roles, replayer: replayer, keeper: keeper, obs: obs,
		fields: newFieldCache(cfg.Fields), log: log, base: base, perUser: map[int64]int{}, clients: map[*client]*socketReader{}, sets: map[string]map[string]bool{}}
	h.guard = newGuard(h)
	stages, ok := obs.(StageObserver)
	if !ok {
		stages = noStages{}
	}
	if cfg.Writers <= 0 {
		cfg.Writers = runtime.GOMAXPROCS(0)
	}
	h.writers = newWriters(base, cfg.Writers, stallAfter, stages)
	context.AfterFunc(base, h.stopAll)
	return h
}

// ServeHTTP checks the session, accepts the socket (Accept refuses a foreign
// Origin with 403), and serves it. Without a valid session the socket is closed
// at once with 1008, so that a browser can tell "log in again" from "network
// down". Every socket, logged in or not, holds a place under MaxSockets from
// its handshake on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.open.enter() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer h.open.leave()
	passes := h.guard.passes.Load() // before the session and rights are read: see recheckSince
	held := h.admitAny()            // the place under MaxSockets, until serve takes it over
	defer func() {
		if held {
			h.releaseAny()
		}
	}()
	var (
		user  auth.User
		ok    bool
		token string
	)
	if held {
		if ck, err := r.Cookie(h.cfg.CookieName); err == nil {
			token = ck.Value
		}
		var err error
		user, ok, err = h.sessions.Resolve(r.Context(), token)
		if err != nil {
			h.log.Error("resolving socket session", "err", err)
			http.Error(w, "session store unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	if h.originRefused(w, r) {
		return
	}
	aw, frames := w, (*wsframe.Handle)(nil)
	if !h.cfg.LibraryFrames {
		aw, frames = wsframe.Wrap(w)
	}
	conn, err := websocket.Accept(aw, r, &websocket.AcceptOptions{
		Subprotocols:       []string{wire.BatchSubprotocol},
		InsecureSkipVerify: true, // originRefused checked Origin, scheme included
	})
	if err != nil {
		h.log.Info("socket handshake refused", "origin", r.Header.Get("Origin"), "err", err)
		return
	}
	if !held {
		h.obs.SocketClosed("limit")
		closeSoon(conn, frames.Writer(), wire.CloseTryAgainLater, "server at socket capacity: try again later")
		return
	}
	if !ok {
		h.obs.SocketClosed("auth")
		closeSoon(conn, frames.Writer(), wire.CloseLoginRequired, "authentication required")
		return
	}
	if reason := h.admitUser(user.ID); reason != "" {
		h.obs.SocketClosed("limit")
		closeSoon(conn, frames.Writer(), wire.CloseTryAgainLater, reason)
		return
	}
	// The role query runs here: a goroutine's stack never shrinks below four
	// times what it uses, so the socket's own goroutine must not grow it.
	allowed, err := h.roleChannels(user.Role)
	if err != nil {
		held = false
		h.release(user.ID)
		h.log.Error("reading role", "err", err)
		_ = conn.Close(wire.CloseInternalError, "internal error")
		return
	}
	// Serve on a fresh goroutine and let the request's goroutine return: its deep
	// stack, the request and echo's context are not kept for the socket's life.
	origin := r.Header.Get("Origin")
	held = false
	h.open.join()
	go func() {
		defer h.open.leave()
		h.serve(conn, frames.Writer(), user, allowed, passes, token, origin)
	}()
}

// roleChannels returns the channels of role (none for a role that is gone).
func (h *Handler) roleChannels(role string) ([]string, error) {
	ctx, cancel := context.WithTimeout(h.base, 10*time.Second)
	defer cancel()
	allowed, err := h.roles.RoleChannels(ctx, role)
	if err != nil && !errors.Is(err, auth.ErrNotFound) {
		return nil, err
	}
	return allowed, nil
}

// closeGrace is how long a socket refused after its handshake (no session,
// a cap) waits for the peer to answer the close frame before its connection
// is dropped: a peer that never answers holds nothing for longer.
const closeGrace = time.Second

// closeSoon sends the close frame and drops the connection once the peer
// answers it or closeGrace has passed. fw is the frame writer under conn
// (nil: the library's CloseNow, which waits for a close in progress).
func closeSoon(conn *websocket.Conn, fw *wsframe.Writer, code websocket.StatusCode, reason string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = conn.Close(code, reason)
	}()
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		if fw != nil {
			fw.Drop()
		} else {
			_ = conn.CloseNow()
		}
		<-done
	}
}

// admitAny counts a socket against MaxSockets from its handshake on; false
// when the instance is full.
func (h *Handler) admitAny() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cfg.MaxSockets > 0 && h.total >= h.cfg.MaxSockets {
		return false
	}
	h.total++
	return true
}

func (h *Handler) releaseAny() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
}

// admitUser counts an admitted socket against its user's cap; it returns why
// not when the cap is full.
func (h *Handler) admitUser(userID int64) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cfg.MaxUserSockets > 0 && h.perUser[userID] >= h.cfg.MaxUserSockets {
		return "too many sockets for this user: close some"
	}
	h.perUser[userID]++
	return ""
}

// release gives back both places of a served socket.
func (h *Handler) release(userID int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	if h.perUser[userID]--; h.perUser[userID] <= 0 {
		delete(h.perUser, userID)
	}
}

// serve runs one admitted socket. allowed are its user's channels as read
// when the guard had begun passes passes.
func (h *Handler) serve(conn *websocket.Conn, fw *wsframe.Writer, user auth.User, allowed []string, passes int64, token string, origin string) {
	// Whatever ended the socket (a close handshake, a peer that vanished, an
	// error), release the hijacked TCP connection: nothing else will.
	defer func() { _ = conn.CloseNow() }()
	ctx, cancel := context.WithCancel(h.base)
	defer cancel()
	conn.SetReadLimit(h.cfg.MaxMessageBytes)
	c := newClient(ctx, cancel, h, conn, fw)
	defer c.finish()
	c.Send(msgConnected(user.ID))
	hash := auth.TokenHash(token)
	if !h.hub.Register(c, hash, user.ID) {
		h.release(user.ID)
		_ = conn.Close(wire.CloseGoingAway, "server shutting down")
		return
	}
	defer h.hub.Unregister(c)
	// The socket's place under the caps (admit) is given back before the hub
	// forgets it: once the stats stop counting a socket, its user can open
	// another.
	defer h.release(user.ID)
	h.keeper.Add(token)
	defer h.keeper.Remove(token)
	start := time.Now()
	h.log.Info("socket opened", "user_id", user.ID, "origin", origin, "session", hash[:12], "batch", c.batch, "coalesced", c.fw != nil)
	s := &socketReader{h: h, c: c, user: socketUser{ID: user.ID, Role: user.Role}, token: token, hash: hash, allowed: h.roleSet(allowed),
		limiter: rate.NewLimiter(rate.Limit(h.cfg.MessageRate), h.cfg.MessageBurst)}
	h.track(c, s)
	defer h.track(c, nil)
	if ctx.Err() != nil { // the server ended before stopAll could see c
		c.stop()
	}
	h.guard.recheckSince(passes, hash)
	err := s.readLoop(ctx)
	c.stop()
	c.finish()
	label, code := c.label(), int(websocket.CloseStatus(err))
	if label == "" {
		label = "error"
		if code != -1 {
			label = "client"
		}
	}
	c.countClose(label)
	h.log.Info("socket closed", "user_id", user.ID, "reason", label, "close_code", code,
		"duration", time.Since(start).Round(time.Millisecond))
}

// track registers the open socket c with its reader s; a nil s forgets c.
func (h *Handler) track(c *client, s *socketReader) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s != nil {
		c.pingSlot = h.slots % pingSlots
		h.slots++
		h.clients[c] = s
	} else {
		delete(h.clients, c)
	}
}

// roleSet returns the set of list, shared by every socket opened with the
// same channels (sets are read-only: restrict replaces a reader's whole):
// 10,000 sockets of one role hold one set, not 10,000, and not the strings
// each role query scanned.
func (h *Handler) roleSet(list []string) map[string]bool {
	key := strings.Join(list, "\x00")
	h.mu.Lock()
	defer h.mu.Unlock()
	if set, ok := h.sets[key]; ok {
		return set
	}
	if len(h.sets) >= maxRoleSets {
		clear(h.sets)
	}
	set := toSet(list)
	h.sets[strings.Clone(key)] = set
	return set
}

// maxRoleSets bounds roleSet's cache (distinct channel lists: a few roles).
const maxRoleSets = 64

func toSet(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[strings.TrimSpace(s)] = true
	}
	return m
}
