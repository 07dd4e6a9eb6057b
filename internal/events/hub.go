package events

import (
	"context"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopstream/shopstream/internal/wire"
)

// Subscriber is one socket as the hub sees it. Both methods must return at once.
type Subscriber interface {
	// SendEvent queues an event's frame without waking the subscriber's writer;
	// at is when the change was made. ok is false when the queue is full: the
	// subscriber has then begun closing itself (1013) and the hub forgets it.
	// wake is true for the first frame queued since the last Wake.
	SendEvent(frame []byte, at time.Time) (ok, wake bool)
	// Wake tells the subscriber's writer that frames are queued. The hub calls it
	// once per publish, so a batch of events costs each socket one wake-up.
	Wake()
	// Close starts closing the socket with code and reason.
	Close(code int, reason string)
}

// Close codes the hub uses.
const (
	CloseGoingAway       = wire.CloseGoingAway
	ClosePolicyViolation = wire.CloseLoginRequired
)

// Subscription is what a subscriber asked of one channel.
type Subscription struct {
	Filter  Filter
	Actions Actions // zero means all
}

// member is a registered subscriber. Its subscriptions live in Hub.channels
// alone: there are only a few channels, and a map per socket would cost an
// idle socket more than looking through them when it leaves.
type member struct {
	session string // sha256 hex of the session token
	userID  int64
}

// Hub fans events out to subscribers. Publish is called by one listener; the
// other methods by socket goroutines. All of them return quickly: the hub never
// waits on a socket (a Subscriber's methods return at once).
//
// Two locks. mu guards the hub's state and is never held while the hub calls
// a Subscriber (SendEvent, Wake, Close) or a Subscribe confirm function.
// order is held, around mu, by everything that puts something in a
// subscriber's queue or changes which subscriber gets which event (Publish,
// Subscribe, Unsubscribe, Unregister, SetPosition, the closes), and by Stats;
// the subscriptions (channels) change only with both held, so Publish reads
// them under order alone. What order keeps:
//
//   - A confirm's messages reach the subscriber's queue before any event
//     after the position it is given, and every event after it follows
//     ("subscribed" names exactly the last event not received live): Subscribe
//     installs the subscription, reads the position and runs confirm with no
//     Publish in between.
//   - After Unsubscribe or Unregister returns, no event of that subscription
//     is queued any more; a subscriber closed for a full queue (SendEvent
//     false) gets nothing after the refused frame; one closed by the hub
//     (SessionEnded, Shutdown) is removed before Close is called, so it gets
//     no event after its close began.
//   - Stats counts every event a subscriber could have seen: it cannot run in
//     the middle of a fan-out.
//
// Callbacks run holding order but not mu (Close runs holding neither), so a
// callback may call Register, Position, WaitPosition, Connected, Sessions
// and Published; Close may call any method. SendEvent, Wake and confirm must
// not call Publish, Subscribe, Unsubscribe, Unregister, SetPosition, Stats or
// the closes: those wait for order.
type Hub struct {
	order     sync.Mutex
	mu        sync.Mutex
	position  int64
	lastAt    time.Time
	published atomic.Int64 // events read from the log and fanned out
	delivered atomic.Int64 // event frames queued to sockets
	members   map[Subscriber]*member
	channels  map[string]map[Subscriber]*Subscription
	traffic   map[string]*traffic // per channel, for the stats of a role that reads only some
	closed    bool
	moved     chan struct{} // closed when the position advances; made only while someone waits
	stages    StageObserver
	// scratch of Publish, under order: the subscribers to wake, each
	// event's channel traffic and the frames queued per event
	touched []Subscriber
	tracks  []*traffic
	counts  []int
}

// StageObserver receives how long one step of an event's road took.
type StageObserver interface {
	Stage(stage string, d time.Duration)
}

// The stages the hub measures.
const (
	// StageRead is from the change (its trigger's clock) to its batch reaching
	// the hub: the writer's commit, the doorbell, ordering the batch and, on
	// other instances, reading it from the log. One observation per event.
	StageRead = "read"
	// StageFanout is from the batch reaching the hub until every socket it
	// queued frames to has been woken. One observation per batch.
	StageFanout = "fanout"
)

type noStages struct{}

func (noStages) Stage(string, time.Duration) {}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{members: map[Subscriber]*member{}, channels: map[string]map[Subscriber]*Subscription{}, traffic: map[string]*traffic{},
		stages: noStages{}}
}

// ObserveStages sends the hub's stage durations to o; call it before the
// first Publish.
func (h *Hub) ObserveStages(o StageObserver) {
	h.mu.Lock()
	h.stages = o
	h.mu.Unlock()
}

// traffic is what the hub has fanned out on one channel.
type traffic struct {
	published, delivered int64
	position             int64
	at                   time.Time
}

// Register adds a subscriber opened with the session whose token hashes to
// sessionHash. It returns false when the hub is shutting down.
func (h *Hub) Register(s Subscriber, sessionHash string, userID int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.members[s] = &member{session: sessionHash, userID: userID}
	return true
}

// Unregister removes a subscriber and all its subscriptions.
func (h *Hub) Unregister(s Subscriber) {
	h.lock()
	defer h.unlock()
	h.removeLocked(s)
}

// lock takes order, then mu; unlock lets both go.
func (h *Hub) lock() {
	h.order.Lock()
	h.mu.Lock()
}

func (h *Hub) unlock() {
	h.mu.Unlock()
	h.order.Unlock()
}

// removeLocked forgets s; the caller holds order and mu.
func (h *Hub) removeLocked(s Subscriber) {
	if _, ok := h.members[s]; !ok {
		return
	}
	for ch := range h.channels {
		h.dropLocked(ch, s)
	}
	delete(h.members, s)
}

func (h *Hub) dropLocked(channel string, s Subscriber) {
	if subs := h.channels[channel]; subs != nil {
		delete(subs, s)
		if len(subs) == 0 {
			delete(h.channels, channel)
		}
	}
}

// Subscribe puts sub in effect for channel, replacing an earlier subscription of
// s to it, and then calls confirm with the position of the last event s will not
// receive live, with no Publish in between: confirm's messages reach s's queue
// before any event after position (see Hub). It returns false if s is not
// registered or confirm could not queue (s is then removed).
func (h *Hub) Subscribe(s Subscriber, channel string, sub *Subscription, confirm func(position int64) bool) bool {
	h.order.Lock()
	defer h.order.Unlock()
	h.mu.Lock()
	_, ok := h.members[s]
	if ok {
		if h.channels[channel] == nil {
			h.channels[channel] = map[Subscriber]*Subscription{}
		}
		h.channels[channel][s] = sub
	}
	position := h.position
	h.mu.Unlock()
	if !ok {
		return false
	}
	if !confirm(position) {
		h.mu.Lock()
		h.removeLocked(s)
		h.mu.Unlock()
		return false
	}
	return true
}

// Unsubscribe ends s's subscription to channel; it reports whether there was one.
func (h *Hub) Unsubscribe(s Subscriber, channel string) bool {
	h.lock()
	defer h.unlock()
	if _, ok := h.channels[channel][s]; !ok {
		return false
	}
	h.dropLocked(channel, s)
	return true
}

// SetPosition sets the position of the newest event the hub has seen.
func (h *Hub) SetPosition(pos int64) {
	h.lock()
	h.position = pos
	h.movedLocked()
	h.unlock()
}

// movedLocked wakes WaitPosition callers, if any.
func (h *Hub) movedLocked() {
	if h.moved != nil {
		close(h.moved)
		h.moved = nil
	}
}

// WaitPosition waits until the hub's position reaches pos, and reports
// whether it did before ctx ended.
func (h *Hub) WaitPosition(ctx context.Context, pos int64) bool {
	for {
		h.mu.Lock()
		if h.position >= pos {
			h.mu.Unlock()
			return true
		}
		if h.moved == nil {
			h.moved = make(chan struct{})
		}
		moved := h.moved
		h.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
			return false
		}
	}
}

// Position returns the position of the newest published event.
func (h *Hub) Position() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.position
}

// Publish offers each record, in order, to every matching subscription. Each
// frame is encoded once, before any lock.
//
// The counters move before any socket can see the events: the published count
// (read without a lock, by /metrics) and the position before the first frame
// is queued, the delivered count (read by Stats, which waits for order) before
// order is let go. Nobody observes an event before it is counted.
func (h *Hub) Publish(recs []Record) {
	start := time.Now()
	evs := make([]Event, len(recs))
	for i := range recs {
		evs[i] = Event{Record: recs[i], Frame: recs[i].Frame()}
	}
	h.order.Lock()
	defer h.order.Unlock()
	stages := h.advance(evs, start)
	gone := h.fanOut(evs)
	h.account(gone)
	for _, s := range h.touched {
		s.Wake()
	}
	if len(h.touched) > 0 {
		stages.Stage(StageFanout, time.Since(start))
	}
	clear(h.touched)
	h.touched = h.touched[:0]
}

// advance moves the position and the published counts over evs, before any
// of them is queued, and notes each event's channel traffic; it returns the
// stage observer. The caller holds order.
func (h *Hub) advance(evs []Event, start time.Time) StageObserver {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range evs {
		if at := evs[i].At; !at.IsZero() {
			h.stages.Stage(StageRead, start.Sub(at))
		}
	}
	h.published.Add(int64(len(evs)))
	h.tracks = h.tracks[:0]
	var tr *traffic
	trChannel := ""
	for i := range evs {
		ev := &evs[i]
		if ch := ev.Channel(); tr == nil || ch != trChannel {
			if tr = h.traffic[ch]; tr == nil {
				tr = &traffic{}
				h.traffic[ch] = tr
			}
			trChannel = ch
		}
		h.position, h.lastAt = ev.Position, ev.At
		tr.published++
		tr.position, tr.at = ev.Position, ev.At
		h.tracks = append(h.tracks, tr)
	}
	if len(evs) > 0 {
		h.movedLocked()
	}
	return h.stages
}

// fanOut queues each event's frame to its channel's matching subscribers,
// holding order but not mu (the subscriptions change only under both). It
// counts the frames queued per event and returns the subscribers that
// refused one (a full queue: closing themselves), which get nothing more.
func (h *Hub) fanOut(evs []Event) (gone map[Subscriber]bool) {
	h.counts = h.counts[:0]
	for i := range evs {
		ev := &evs[i]
		n := 0
		for s, sub := range h.channels[ev.Channel()] {
			if gone[s] || !sub.Matches(ev) {
				continue
			}
			ok, wake := s.SendEvent(ev.Frame, ev.At)
			if !ok {
				if gone == nil {
					gone = map[Subscriber]bool{}
				}
				gone[s] = true
				continue
			}
			n++
			if wake {
				h.touched = append(h.touched, s)
			}
		}
		h.counts = append(h.counts, n)
	}
	return gone
}

// account adds the frames fanOut queued to the delivered counts and forgets
// the subscribers that refused one. The caller holds order.
func (h *Hub) account(gone map[Subscriber]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delivered := 0
	for i, n := range h.counts {
		h.tracks[i].delivered += int64(n)
		delivered += n
	}
	h.delivered.Add(int64(delivered))
	for s := range gone {
		h.removeLocked(s)
	}
	clear(h.tracks)
}

// Published counts the events the hub has fanned out.
func (h *Hub) Published() int64 { return h.published.Load() }

// Connected counts the registered subscribers.
func (h *Hub) Connected() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.members)
}

// SessionEnded closes every subscriber opened with the session whose token
// hashes to tokenHash.
func (h *Hub) SessionEnded(tokenHash string) {
	h.closeWhere(func(m *member) bool { return m.session == tokenHash }, ClosePolicyViolation, "session ended")
}

// UserSessionsEnded closes every subscriber of the user: disabled, or with a
// new password or role (its session epoch went up).
func (h *Hub) UserSessionsEnded(userID int64) {
	h.closeWhere(func(m *member) bool { return m.userID == userID }, ClosePolicyViolation, "session ended")
}

// Shutdown closes every subscriber with 1001 and refuses new ones.
func (h *Hub) Shutdown() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.closeWhere(func(*member) bool { return true }, CloseGoingAway, "server shutting down")
}

// closeWhere removes the subscribers match selects, then, with no lock held,
// starts closing them: removed first, they get no event once their close
// has begun, and Close may call back into the hub.
func (h *Hub) closeWhere(match func(*member) bool, code int, reason string) {
	h.lock()
	var closing []Subscriber
	for s, m := range h.members {
		if match(m) {
			closing = append(closing, s)
			h.removeLocked(s)
		}
	}
	h.unlock()
	for _, s := range closing {
		s.Close(code, reason)
	}
}

// Sessions returns the distinct session hashes of the connected subscribers.
func (h *Hub) Sessions() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, m := range h.members {
		if !seen[m.session] {
			seen[m.session] = true
			out = append(out, m.session)
		}
	}
	return out
}

// Stats is a snapshot of the hub.
type Stats struct {
	ConnectedClients int            `json:"connectedClients"`
	ActiveChannels   []string       `json:"activeChannels"`
	Subscriptions    map[string]int `json:"subscriptions"`
	EventsPublished  int64          `json:"eventsPublished"`
	EventsDelivered  int64          `json:"eventsDelivered"`
	LastEventID      string         `json:"lastEventId"`
	LastEventAt      *time.Time     `json:"lastEventAt"`
	LastEventAgeSecs *float64       `json:"lastEventAgeSeconds"`
}

// Stats returns a snapshot of the hub.
func (h *Hub) Stats() Stats { return h.StatsOf(nil) }

// StatsOf returns a snapshot of the hub as a reader of the channels for which
// visible holds sees it: the channels, subscriptions, counts and last event of
// those channels alone (a role that may not read transactions learns nothing
// of their traffic). A nil visible sees everything, including the log's
// position where it moved past the last event.
func (h *Hub) StatsOf(visible func(channel string) bool) Stats {
	h.lock()
	defer h.unlock()
	st := Stats{ConnectedClients: len(h.members), ActiveChannels: []string{}, Subscriptions: map[string]int{}}
	position, lastAt := h.position, h.lastAt
	if visible == nil {
		st.EventsPublished, st.EventsDelivered = h.published.Load(), h.delivered.Load()
	} else {
		position, lastAt = 0, time.Time{}
		for ch, tr := range h.traffic {
			if !visible(ch) {
				continue
			}
			st.EventsPublished += tr.published
			st.EventsDelivered += tr.delivered
			if tr.position > position {
				position, lastAt = tr.position, tr.at
			}
		}
	}
	st.LastEventID = strconv.FormatInt(position, 10)
	if !lastAt.IsZero() {
		at := lastAt.UTC()
		age := time.Since(at).Seconds()
		st.LastEventAt, st.LastEventAgeSecs = &at, &age
	}
	for ch, subs := range h.channels {
		if visible != nil && !visible(ch) {
			continue
		}
		st.ActiveChannels = append(st.ActiveChannels, ch)
		st.Subscriptions[ch] = len(subs)
	}
	sort.Strings(st.ActiveChannels)
	return st
}
