package wsapi

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/shopstream/shopstream/internal/events"
	"github.com/shopstream/shopstream/internal/wire"
)

// strikesBeforeClose is how many rate-limited messages in a row close the socket.
const strikesBeforeClose = 20

const rateLimitReason = "message rate limit exceeded"

// socketReader is the read side of one socket: it runs the socket's read
// loop on the socket's own goroutine (Handler.serve) and keeps what answering
// the client needs: the user and login session it was opened with, the
// user's rights, the subscriptions, the message rate. It writes nothing to
// the connection itself: its answers go through the client's queue (Send).
type socketReader struct {
	h       *Handler
	c       *client
	user    socketUser
	token   string // the login session's token, to check it again (the guard)
	hash    string // its SHA-256, as signals and logs name it
	limiter *rate.Limiter
	strikes int
	failed  bool // the client broke the protocol: the socket is closing

	// mu guards the rights and subscriptions: the read loop subscribes, the
	// guard revokes. It is held across the hub calls that put a change in
	// effect (the hub never takes it), so a revocation cannot slip between a
	// subscribe's check and its hub.Subscribe.
	mu      sync.Mutex
	allowed map[string]bool
	subs    []string // the subscribed channels (a slice: few, and an idle socket's map would cost more)
}

func (s *socketReader) subscribedLocked(ch string) bool { return slices.Contains(s.subs, ch) }

func (s *socketReader) forgetLocked(ch string) {
	s.subs = slices.DeleteFunc(s.subs, func(c string) bool { return c == ch })
}

// socketUser is what a socket keeps of its user: the rest (the email, the
// password hash) is not needed after the handshake, and would stay in memory
// for the socket's life.
type socketUser struct {
	ID   int64
	Role string
}

// readLoop reads client messages until the socket closes. Its reads do not
// hang on ctx (see client.stop); handling a message does.
func (s *socketReader) readLoop(ctx context.Context) error {
	rctx := context.Background() // values neither: reads need none
	for {
		typ, b, err := s.c.conn.Read(rctx)
		if err != nil {
			return err
		}
		if s.failed {
			continue // closing: read on until the close handshake ends the socket
		}
		if typ == websocket.MessageText && !utf8.Valid(b) {
			// RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection.
			s.failed = true
			s.c.Close(wire.CloseInvalidUTF8, "text frames must be UTF-8")
			continue
		}
		if !s.limiter.Allow() {
			if s.strikes++; s.strikes > strikesBeforeClose {
				s.c.closeAfterFlush(wire.CloseLoginRequired, rateLimitReason)
				continue
			}
			s.c.Send(msgError(wire.CodeRateLimited, "too many messages: slow down"))
			continue
		}
		s.strikes = 0
		if typ != websocket.MessageText {
			s.c.Send(msgError(wire.CodeInvalidRequest, "binary frames are not accepted: send JSON text"))
			continue
		}
		if perr := s.handleAside(ctx, b); perr != nil {
			s.c.Send(msgError(perr.Code, perr.Message))
		}
	}
}

// handleAside runs handle on a goroutine of its own and waits for it. Decoding
// and subscribing need a deeper stack than reading; a goroutine's stack never
// shrinks below four times what it uses, so if the socket's reader grew its
// own, every idle socket would keep the larger stack.
func (s *socketReader) handleAside(ctx context.Context, b []byte) *protocolError {
	done := make(chan *protocolError, 1)
	go func() { done <- s.handle(ctx, b) }()
	return <-done
}

func (s *socketReader) handle(ctx context.Context, b []byte) *protocolError {
	req, perr := decodeRequest(b)
	if perr != nil {
		return perr
	}
	switch req.Type {
	case wire.TypePing:
		s.c.Send(msgPong(time.Now()))
	case wire.TypeSubscribe:
		return s.subscribe(ctx, req)
	case wire.TypeUnsubscribe:
		return s.unsubscribe(req)
	default:
		return invalid("unknown message type %q", req.Type)
	}
	return nil
}

func (s *socketReader) checkChannel(ch string) *protocolError {
	if !s.h.channelExists(ch) {
		return &protocolError{Code: wire.CodeUnknownChannel, Message: "unknown channel " + quote(ch)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkAllowedLocked(ch)
}

func (s *socketReader) checkAllowedLocked(ch string) *protocolError {
	if !s.allowed[ch] {
		return &protocolError{Code: wire.CodeForbidden, Message: "your role may not read " + ch}
	}
	return nil
}

// restrict puts the user's current rights in effect: the subscriptions to
// channels no longer allowed end, each with an error forbidden naming its
// channel (the socket stays open; a new subscribe to the channel is refused),
// and newly granted channels may be subscribed.
func (s *socketReader) restrict(allowed map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowed = allowed
	var revoked []string
	for _, ch := range s.subs {
		if !allowed[ch] {
			revoked = append(revoked, ch)
		}
	}
	sort.Strings(revoked)
	for _, ch := range revoked {
		s.forgetLocked(ch)
		s.h.hub.Unsubscribe(s.c, ch)
		s.c.Send(msgChannelError(wire.CodeForbidden, ch, "your role may no longer read "+ch))
	}
	if len(revoked) > 0 {
		s.h.log.Info("subscriptions revoked", "user_id", s.user.ID, "channels", revoked)
	}
}

// reading reports whether the socket still subscribes to ch (a replay stops
// when the subscription was revoked or ended).
func (s *socketReader) reading(ch string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscribedLocked(ch)
}

func (s *socketReader) subscribe(ctx context.Context, req request) *protocolError {
	channels, perr := req.channelList()
	if perr != nil {
		return perr
	}
	sub, perr := req.subscription()
	if perr != nil {
		return perr
	}
	since, resume, perr := req.since()
	if perr != nil {
		return perr
	}
	if resume && since > s.h.hub.Position() {
		if perr := s.awaitPosition(ctx, since); perr != nil {
			return perr
		}
	}
	for _, ch := range channels {
		if perr := s.checkChannel(ch); perr != nil {
			return perr
		}
		if perr := s.checkFilter(ctx, ch, sub.Filter); perr != nil {
			return perr
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range channels {
		if perr := s.checkAllowedLocked(ch); perr != nil { // revoked while the filter was checked
			return perr
		}
		if !s.subscribedLocked(ch) { // else the new subscription replaces the old one
			if len(s.subs) >= s.h.cfg.MaxSubscriptions {
				return &protocolError{Code: wire.CodeSubscriptionLimit, Message: "too many subscriptions on this connection"}
			}
			s.subs = append(s.subs, ch)
		}
		s.h.hub.Subscribe(s.c, ch, sub, func(position int64) bool {
			if !s.c.Send(msgSubscribed(ch, position)) {
				return false
			}
			if resume && since < position {
				return s.c.push(item{replay: &replay{channel: ch, entity: entityOf(ch), since: since, upto: position, sub: sub, reading: s.reading}})
			}
			return true
		})
	}
	return nil
}

// sinceWait bounds how long a subscription waits for this instance to read
// up to its "since": longer than the listener's idle read (2 s) plus an
// election (1 s).
const sinceWait = 5 * time.Second

// awaitPosition handles a "since" beyond this instance's position. The client
// may have seen it on another instance a moment ago, or before a crash cut
// the log short (the ids stay handed out): the subscription waits until this
// instance's listener has read that far, so that nothing is replayed twice. A
// since no sequencer ever handed out is refused at once.
func (s *socketReader) awaitPosition(ctx context.Context, since int64) *protocolError {
	handed, err := s.h.replayer.HandedOut(ctx)
	if err != nil {
		s.h.log.Error("reading the log position", "err", err)
		return &protocolError{Code: wire.CodeInternal, Message: "could not check since: try again"}
	}
	if since > handed {
		return invalid(`"since" %d is ahead of the log`, since)
	}
	wctx, cancel := context.WithTimeout(ctx, sinceWait)
	defer cancel()
	if !s.h.hub.WaitPosition(wctx, since) {
		return invalid(`"since" %d is ahead of what this instance has read: try again`, since)
	}
	return nil
}

// checkFilter refuses a filter on a field the channel's rows do not have.
func (s *socketReader) checkFilter(ctx context.Context, channel string, f events.Filter) *protocolError {
	if len(f) == 0 || s.h.cfg.Fields == nil {
		return nil
	}
	names := make([]string, 0, len(f))
	for k := range f {
		names = append(names, k)
	}
	sort.Strings(names)
	missing, err := s.h.fields.has(ctx, entityOf(channel), names)
	if err != nil {
		s.h.log.Error("reading table columns", "err", err)
		return &protocolError{Code: wire.CodeInternal, Message: "could not check the filter: try again"}
	}
	if missing != "" {
		return invalid("filter names %s, which %s rows do not have", quote(missing), entityOf(channel))
	}
	return nil
}

func entityOf(channel string) string { return wire.Entity(channel) }

func (s *socketReader) unsubscribe(req request) *protocolError {
	channels, perr := req.channelList()
	if perr != nil {
		return perr
	}
	for _, ch := range channels {
		if !s.h.channelExists(ch) {
			return &protocolError{Code: wire.CodeUnknownChannel, Message: "unknown channel " + quote(ch)}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range channels {
		s.h.hub.Unsubscribe(s.c, ch)
		s.forgetLocked(ch)
		s.c.Send(msgUnsubscribed(ch))
	}
	return nil
}

func (h *Handler) channelExists(ch string) bool {
	for _, c := range h.cfg.Channels {
		if c == ch {
			return true
		}
	}
	return false
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return `"` + s + `"`
}

var _ events.Subscriber = (*client)(nil)
