package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Subscription is one channel a Stream follows.
type Subscription struct {
	Channel string          // e.g. "order_changes"
	Filter  json.RawMessage // a JSON object of field → value or values; nil: every row
	Actions []string        // e.g. ActionCreated; nil: every action
	// Since resumes after this event id on the first connection: the server
	// replays what the channel had after it. 0: from now on.
	Since int64
}

// ErrSessionEnded is a socket the server closed with 1008: the session ended
// or is missing. A Stream with credentials logs in again once.
var ErrSessionEnded = errors.New("the server closed the socket: session ended or missing (1008)")

// ErrNoChannel ends a Stream none of whose channels is subscribed any more.
var ErrNoChannel = errors.New("no channel could be subscribed")

// Stream follows the channels of its subscriptions over as many sockets as
// it takes: it reconnects with backoff and resumes each channel after the
// last event it delivered there, dropping ids at or below it.
type Stream struct {
	c    *Client
	subs []Subscription
	out  chan Message
	done chan struct{}
	err  error // set before done is closed

	mu    sync.Mutex
	since map[string]int64 // the last event id delivered (or position confirmed) per channel
}

// Stream starts following subs. It runs until ctx ends (Err is then nil) or
// something reconnecting cannot mend happens (Err says what): a close code
// other than 1001, 1006, 1011 and 1013, a second 1008 without an established
// socket in between, a failed login, a server message that does not decode,
// or no channel left subscribed.
func (c *Client) Stream(ctx context.Context, subs ...Subscription) (*Stream, error) {
	if len(subs) == 0 {
		return nil, errors.New("stream: no subscription")
	}
	s := &Stream{c: c, out: make(chan Message), done: make(chan struct{}), since: map[string]int64{}}
	seen := map[string]bool{}
	for _, sub := range subs {
		if sub.Channel == "" {
			return nil, errors.New("stream: a subscription without a channel")
		}
		if seen[sub.Channel] {
			return nil, fmt.Errorf("stream: channel %s subscribed twice", sub.Channel)
		}
		seen[sub.Channel] = true
		if sub.Filter != nil {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(sub.Filter, &obj); err != nil || obj == nil {
				return nil, fmt.Errorf("stream: the filter of %s is not a JSON object", sub.Channel)
			}
		}
		if sub.Since < 0 {
			return nil, fmt.Errorf("stream: negative since for %s", sub.Channel)
		}
		s.since[sub.Channel] = sub.Since
		s.subs = append(s.subs, sub)
	}
	go s.run(ctx)
	return s, nil
}

// Messages delivers the stream's events and notices, in the order they came.
// It is closed when the stream ends; then Err says why. A reader that stops
// reading holds the stream up (the server closes a socket that is read too
// slowly, and the stream resumes): cancel the context to stop it.
func (s *Stream) Messages() <-chan Message { return s.out }

// Done is closed when the stream has ended.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err is why the stream ended: nil while it runs and after its context ended.
func (s *Stream) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Positions returns the last event id delivered (or position confirmed) on
// each channel: where a new Stream's Since resumes.
func (s *Stream) Positions() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.since)
}

func (s *Stream) position(ch string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.since[ch]
}

func (s *Stream) setPosition(ch string, id int64) {
	s.mu.Lock()
	s.since[ch] = id
	s.mu.Unlock()
}

func (s *Stream) run(ctx context.Context) {
	err := s.follow(ctx)
	if ctx.Err() != nil {
		err = nil
	}
	s.err = err
	close(s.done) // first: once Messages is closed, Err has the error
	close(s.out)
}

// follow connects again and again until ctx ends or an error is fatal.
func (s *Stream) follow(ctx context.Context) error {
	attempt := 0
	reloggedIn := false
	for {
		established, err := s.connection(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if established {
			attempt, reloggedIn = 0, false
		}
		switch {
		case errors.Is(err, ErrSessionEnded):
			email, password, ok := s.c.credentials()
			if !ok || reloggedIn {
				return err
			}
			if !s.send(ctx, Notice{Kind: NoticeLoggingIn}) {
				return nil
			}
			if lerr := s.c.login(ctx, email, password); lerr != nil {
				return fmt.Errorf("%w; logging in again failed: %w", err, lerr)
			}
			reloggedIn = true
		case retryable(err):
			d := s.c.backoff(attempt)
			attempt++
			if !s.send(ctx, Notice{Kind: NoticeReconnecting, Err: err, Delay: d}) || !wait(ctx, d) {
				return nil
			}
		default:
			return err
		}
	}
}

// send delivers m unless ctx ends first.
func (s *Stream) send(ctx context.Context, m Message) bool {
	select {
	case s.out <- m:
		return true
	case <-ctx.Done():
		return false
	}
}

// FullJitter returns the backoff "uniform in [0, min(max, min·2ⁿ))" for
// attempt n: exponential from min to max, with full jitter.
func FullJitter(minDelay, maxDelay time.Duration) func(attempt int) time.Duration {
	return func(n int) time.Duration {
		n = max(n, 0)
		ceil := maxDelay
		if n < 63 && minDelay <= maxDelay>>n { // minDelay·2ⁿ ≤ maxDelay, without overflow
			ceil = minDelay << n
		}
		if ceil <= 0 {
			return 0
		}
		return time.Duration(rand.Int64N(int64(ceil)))
	}
}

func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// HandshakeError is a socket handshake the server answered with an HTTP
// status instead of an upgrade.
type HandshakeError struct {
	Status int
	Err    error
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("socket handshake refused with HTTP %d: %v", e.Status, e.Err)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// fatalError ends the stream: reconnecting would not help.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

func (e *fatalError) Unwrap() error { return e.err }

func fatalf(format string, args ...any) error { return &fatalError{fmt.Errorf(format, args...)} }

// retryable reports whether err is worth a reconnect: a network error, a
// server error or 429 during the handshake, or close code 1001, 1011 or 1013.
func retryable(err error) bool {
	var he *HandshakeError
	if errors.As(err, &he) {
		return he.Status >= 500 || he.Status == http.StatusTooManyRequests
	}
	var fe *fatalError
	if errors.As(err, &fe) {
		return false
	}
	switch websocket.CloseStatus(err) {
	case -1:
		return true // no close frame: the network or the process went away
	case CloseGoingAway, CloseInternalError, CloseTryAgainLater:
		return true
	}
	return false
}

// connection opens one socket and reads it until it ends. established is
// true once the server said "connected".
func (s *Stream) connection(ctx context.Context) (established bool, err error) {
	conn, err := s.dial(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = conn.CloseNow() }()
	conn.SetReadLimit(s.c.readLimit)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.c.pingInterval > 0 {
		go keepAlive(cctx, conn, s.c.pingInterval)
	}
	sess := &session{s: s, conn: conn, position: map[string]int64{}, live: map[string]bool{}}
	err = sess.readLoop(cctx)
	return sess.established, err
}

func (s *Stream) dial(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, s.c.timeout)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, s.c.socketURL(), &websocket.DialOptions{
		HTTPClient:   s.c.http,
		Subprotocols: []string{BatchSubprotocol},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, &HandshakeError{Status: resp.StatusCode, Err: err}
		}
		return nil, fmt.Errorf("opening socket: %w", err)
	}
	return conn, nil
}

// keepAlive pings the server so that a silently dead connection is noticed.
func keepAlive(ctx context.Context, conn *websocket.Conn, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, every/2)
		err := conn.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			_ = conn.CloseNow()
			return
		}
	}
}

// session is the protocol state of one socket.
type session struct {
	s           *Stream
	conn        *websocket.Conn
	established bool
	pending     []pendingSubscribe // subscribes not answered yet, in the order sent
	live        map[string]bool    // channels subscribed on this socket
	position    map[string]int64   // the position each channel was subscribed at
}

type pendingSubscribe struct {
	sub   Subscription
	since int64 // 0: none
}

func (ss *session) readLoop(ctx context.Context) error {
	for {
		_, frame, err := ss.conn.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == CloseLoginRequired {
				return fmt.Errorf("%w: %w", ErrSessionEnded, err)
			}
			return fmt.Errorf("reading socket: %w", err)
		}
		msgs, derr := decodeFrame(frame)
		for _, m := range msgs {
			if err := ss.handle(ctx, m); err != nil {
				return err
			}
		}
		if derr != nil {
			return &fatalError{derr}
		}
	}
}

func (ss *session) handle(ctx context.Context, m serverMessage) error {
	switch m.Type {
	case TypeConnected:
		ss.established = true
		for _, sub := range ss.s.subs {
			if err := ss.subscribe(ctx, sub, ss.s.position(sub.Channel)); err != nil {
				return err
			}
		}
	case TypeSubscribed:
		return ss.subscribed(m)
	case TypeResyncRequired:
		return ss.resync(ctx, m.Channel)
	case TypeError:
		return ss.serverError(ctx, m)
	case TypeEvent:
		return ss.event(ctx, m)
	}
	return nil
}

// subscribe asks for sub, resuming after since unless it is 0.
func (ss *session) subscribe(ctx context.Context, sub Subscription, since int64) error {
	req := map[string]any{"type": TypeSubscribe, "channel": sub.Channel}
	if sub.Filter != nil {
		req["filter"] = sub.Filter
	}
	if len(sub.Actions) > 0 {
		req["actions"] = sub.Actions
	}
	if since > 0 {
		req["since"] = strconv.FormatInt(since, 10)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return fatalf("encoding subscribe: %w", err)
	}
	if err := ss.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("subscribing to %s: %w", sub.Channel, err)
	}
	ss.pending = append(ss.pending, pendingSubscribe{sub: sub, since: since})
	return nil
}

// subscribed records the confirmed position. Without since, every event
// after it will come, so it is where to resume; with since, the replay still
// has to come, so the resume point stays where it was.
func (ss *session) subscribed(m serverMessage) error {
	req, ok := ss.popPending()
	if !ok || req.sub.Channel != m.Channel {
		return fatalf("unexpected subscribed message for %q", truncate(m.Channel, 40))
	}
	pos, err := strconv.ParseInt(m.Position, 10, 64)
	if err != nil {
		return fatalf("subscribed to %s at bad position %q: %w", m.Channel, truncate(m.Position, 40), err)
	}
	ss.live[m.Channel] = true
	ss.position[m.Channel] = pos
	if req.since == 0 && pos > ss.s.position(m.Channel) {
		ss.s.setPosition(m.Channel, pos)
	}
	return nil
}

// resync: the events after since are gone from the log; the server goes on
// live after the subscribed position.
func (ss *session) resync(ctx context.Context, channel string) error {
	since := ss.s.position(channel)
	if pos := ss.position[channel]; pos > since {
		ss.s.setPosition(channel, pos)
	}
	return ss.notify(ctx, Notice{Kind: NoticeResync, Channel: channel, Since: since})
}

func (ss *session) serverError(ctx context.Context, m serverMessage) error {
	if m.Channel != "" && m.Code == CodeForbidden {
		// A revocation: unasked, and the only error that names its channel.
		delete(ss.live, m.Channel)
		if err := ss.notify(ctx, Notice{Kind: NoticeRevoked, Channel: m.Channel, Code: m.Code, Message: m.Message}); err != nil {
			return err
		}
		return ss.checkLive()
	}
	req, ok := ss.popPending()
	if !ok {
		return ss.notify(ctx, Notice{Kind: NoticeServerError, Code: m.Code, Message: m.Message})
	}
	ch := req.sub.Channel
	if req.since > 0 && m.Code == CodeInvalidRequest {
		// A resume the server cannot take (after a database crash, or on an
		// instance that has not read the newest events yet): go on live, as
		// the dashboard reloads, and say that something may have been missed.
		ss.s.setPosition(ch, 0) // no longer a trusted resume point
		n := Notice{Kind: NoticeResumeRefused, Channel: ch, Since: req.since, Code: m.Code, Message: m.Message}
		if err := ss.notify(ctx, n); err != nil {
			return err
		}
		return ss.subscribe(ctx, req.sub, 0)
	}
	if err := ss.notify(ctx, Notice{Kind: NoticeSubscribeFailed, Channel: ch, Code: m.Code, Message: m.Message}); err != nil {
		return err
	}
	return ss.checkLive()
}

// checkLive ends the stream when no channel is subscribed or on its way.
func (ss *session) checkLive() error {
	if len(ss.pending) == 0 && len(ss.live) == 0 {
		return &fatalError{ErrNoChannel}
	}
	return nil
}

func (ss *session) popPending() (pendingSubscribe, bool) {
	if len(ss.pending) == 0 {
		return pendingSubscribe{}, false
	}
	req := ss.pending[0]
	ss.pending = ss.pending[1:]
	return req, true
}

// event delivers one event and advances its channel's resume point.
func (ss *session) event(ctx context.Context, m serverMessage) error {
	ev, err := m.event()
	if err != nil {
		return &fatalError{err}
	}
	last := ss.s.position(ev.Channel)
	if ev.ID <= last {
		return ss.notify(ctx, Notice{Kind: NoticeDuplicate, Channel: ev.Channel, ID: ev.ID})
	}
	ss.s.setPosition(ev.Channel, ev.ID) // first: a reader that has the event sees it in Positions
	if !ss.s.send(ctx, ev) {
		ss.s.setPosition(ev.Channel, last)
		return ctx.Err()
	}
	return nil
}

// notify delivers a notice; it fails only when ctx ended.
func (ss *session) notify(ctx context.Context, n Notice) error {
	if !ss.s.send(ctx, n) {
		return ctx.Err()
	}
	return nil
}
