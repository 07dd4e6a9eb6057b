package events

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/waitfor"
)

// fakeSub is a Subscriber that records what it is sent. A zero capacity means
// an unbounded queue. It is safe for concurrent use.
type fakeSub struct {
	name     string
	capacity int

	mu      sync.Mutex
	msgs    [][]byte
	full    bool // Send refused: the subscriber closed itself
	closes  []closeCall
	refused int // Sends after full
}

type closeCall struct {
	code   int
	reason string
}

func newFakeSub(name string, capacity int) *fakeSub { return &fakeSub{name: name, capacity: capacity} }

func (s *fakeSub) SendEvent(msg []byte, _ time.Time) (bool, bool) { return s.Send(msg), false }

func (s *fakeSub) Wake() {}

func (s *fakeSub) Send(msg []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full || len(s.closes) > 0 {
		s.refused++
		return false
	}
	if s.capacity > 0 && len(s.msgs) >= s.capacity {
		s.full = true
		return false
	}
	s.msgs = append(s.msgs, msg)
	return true
}

func (s *fakeSub) Close(code int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes = append(s.closes, closeCall{code, reason})
}

func (s *fakeSub) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = string(m)
	}
	return out
}

func (s *fakeSub) closeCalls() []closeCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]closeCall(nil), s.closes...)
}

func (s *fakeSub) refusedSends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// confirmMsg is what test confirm callbacks queue.
func confirmMsg(channel string, pos int64) []byte {
	return []byte(fmt.Sprintf(`{"type":"subscribed","channel":%q,"position":"%d"}`, channel, pos))
}

// confirmTo returns a confirm callback that queues a subscribed message on s
// and records the position it was given.
func confirmTo(s *fakeSub, channel string, got *int64) func(int64) bool {
	return func(pos int64) bool {
		if got != nil {
			*got = pos
		}
		return s.Send(confirmMsg(channel, pos))
	}
}

var hubTime = time.Date(2026, 1, 25, 10, 30, 0, 0, time.UTC)

// rec returns a created record of entity at pos with a small row.
func rec(entity string, pos int64, row string) Record {
	return Record{Position: pos, Entity: entity, Action: "created", Data: []byte(row), At: hubTime}
}

func frames(recs ...Record) []string {
	out := make([]string, len(recs))
	for i := range recs {
		out[i] = string(recs[i].Frame())
	}
	return out
}

func mustRegister(t *testing.T, h *Hub, s *fakeSub, session string, user int64) {
	t.Helper()
	if !h.Register(s, session, user) {
		t.Fatalf("Register(%s) = false", s.name)
	}
}

func mustSubscribe(t *testing.T, h *Hub, s *fakeSub, channel string, sub *Subscription) int64 {
	t.Helper()
	var pos int64 = -1
	if sub == nil {
		sub = &Subscription{}
	}
	if !h.Subscribe(s, channel, sub, confirmTo(s, channel, &pos)) {
		t.Fatalf("Subscribe(%s, %s) = false", s.name, channel)
	}
	return pos
}

func assertMessages(t *testing.T, s *fakeSub, want ...string) {
	t.Helper()
	got := s.messages()
	if len(want) == 0 {
		want = []string{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s messages:\n got %q\nwant %q", s.name, got, want)
	}
}

func TestHubFanOut(t *testing.T) {
	h := NewHub()
	a, b, c := newFakeSub("a", 0), newFakeSub("b", 0), newFakeSub("c", 0)
	other := newFakeSub("other", 0)
	idle := newFakeSub("idle", 0) // registered, subscribed to nothing
	for _, s := range []*fakeSub{a, b, c, other, idle} {
		mustRegister(t, h, s, "sess-"+s.name, 1)
	}
	for _, s := range []*fakeSub{a, b, c} {
		mustSubscribe(t, h, s, "orders_changes", nil)
	}
	mustSubscribe(t, h, other, "products_changes", nil)

	o1, o2 := rec("orders", 1, `{"id":1}`), rec("orders", 2, `{"id":2}`)
	p3 := rec("products", 3, `{"id":3}`)
	o4 := rec("orders", 4, `{"id":4}`)
	h.Publish([]Record{o1, o2, p3})
	h.Publish([]Record{o4})

	sub0 := string(confirmMsg("orders_changes", 0))
	for _, s := range []*fakeSub{a, b, c} {
		assertMessages(t, s, append([]string{sub0}, frames(o1, o2, o4)...)...)
	}
	assertMessages(t, other, append([]string{string(confirmMsg("products_changes", 0))}, frames(p3)...)...)
	assertMessages(t, idle)
	if got := h.Position(); got != 4 {
		t.Errorf("Position = %d, want 4", got)
	}
}

func TestHubFanOutFilter(t *testing.T) {
	h := NewHub()
	pending, all := newFakeSub("pending", 0), newFakeSub("all", 0)
	mustRegister(t, h, pending, "s1", 1)
	mustRegister(t, h, all, "s2", 2)
	mustSubscribe(t, h, pending, "orders_changes", &Subscription{Filter: mustFilter(t, `{"status":"pending"}`)})
	mustSubscribe(t, h, all, "orders_changes", nil)
	r1 := rec("orders", 1, `{"id":1,"status":"pending"}`)
	r2 := rec("orders", 2, `{"id":2,"status":"paid"}`)
	h.Publish([]Record{r1, r2})
	assertMessages(t, pending, append([]string{string(confirmMsg("orders_changes", 0))}, frames(r1)...)...)
	assertMessages(t, all, append([]string{string(confirmMsg("orders_changes", 0))}, frames(r1, r2)...)...)
}

func TestHubSubscribeConfirm(t *testing.T) {
	h := NewHub()
	h.SetPosition(41)
	s := newFakeSub("s", 0)
	mustRegister(t, h, s, "sess", 1)
	if pos := mustSubscribe(t, h, s, "orders_changes", nil); pos != 41 {
		t.Fatalf("confirm got position %d, want 41", pos)
	}
	r42 := rec("orders", 42, `{"id":42}`)
	h.Publish([]Record{r42})
	// Resubscribing replaces the subscription and confirms the new position.
	if pos := mustSubscribe(t, h, s, "orders_changes", &Subscription{Actions: ActionDeleted}); pos != 42 {
		t.Fatalf("second confirm got position %d, want 42", pos)
	}
	h.Publish([]Record{rec("orders", 43, `{"id":43}`)}) // created: filtered out now
	assertMessages(t, s, string(confirmMsg("orders_changes", 41)), frames(r42)[0], string(confirmMsg("orders_changes", 42)))
	if st := h.Stats(); st.Subscriptions["orders_changes"] != 1 {
		t.Errorf("subscriptions after resubscribe = %d, want 1", st.Subscriptions["orders_changes"])
	}
}

func TestHubSubscribeRefused(t *testing.T) {
	h := NewHub()
	s := newFakeSub("s", 0)
	called := false
	if h.Subscribe(s, "orders_changes", &Subscription{}, func(int64) bool { called = true; return true }) {
		t.Fatal("Subscribe of an unregistered subscriber = true")
	}
	if called {
		t.Error("confirm called for an unregistered subscriber")
	}

	// A confirm that cannot queue removes the subscriber entirely.
	mustRegister(t, h, s, "sess", 1)
	mustSubscribe(t, h, s, "products_changes", nil)
	if h.Subscribe(s, "orders_changes", &Subscription{}, func(int64) bool { return false }) {
		t.Fatal("Subscribe with failing confirm = true")
	}
	h.Publish([]Record{rec("orders", 1, `{}`), rec("products", 2, `{}`)})
	assertMessages(t, s, string(confirmMsg("products_changes", 0)))
	if st := h.Stats(); st.ConnectedClients != 0 || len(st.ActiveChannels) != 0 {
		t.Errorf("stats after failed confirm = %+v", st)
	}
}

func TestHubSlowSubscriberRemoved(t *testing.T) {
	h := NewHub()
	slow := newFakeSub("slow", 3) // confirm + 2 events
	fast := newFakeSub("fast", 0)
	mustRegister(t, h, slow, "s1", 1)
	mustRegister(t, h, fast, "s2", 2)
	mustSubscribe(t, h, slow, "orders_changes", nil)
	mustSubscribe(t, h, slow, "products_changes", nil) // second confirm: the queue holds one event more
	mustSubscribe(t, h, fast, "orders_changes", nil)

	var recs []Record
	for i := int64(1); i <= 5; i++ {
		recs = append(recs, rec("orders", i, fmt.Sprintf(`{"id":%d}`, i)))
	}
	h.Publish(recs[:3])
	h.Publish(recs[3:])
	h.Publish([]Record{rec("products", 6, `{}`)})

	assertMessages(t, slow, string(confirmMsg("orders_changes", 0)), string(confirmMsg("products_changes", 0)), frames(recs[0])[0])
	assertMessages(t, fast, append([]string{string(confirmMsg("orders_changes", 0))}, frames(recs...)...)...)
	if n := slow.refusedSends(); n != 0 {
		t.Errorf("hub offered %d more messages to a removed subscriber", n)
	}
	if len(slow.closeCalls()) != 0 {
		t.Errorf("hub closed a subscriber that closes itself: %v", slow.closeCalls())
	}
	st := timeless(h.Stats())
	want := Stats{ConnectedClients: 1, ActiveChannels: []string{"orders_changes"},
		Subscriptions: map[string]int{"orders_changes": 1}, LastEventID: "6", EventsPublished: 6, EventsDelivered: 6}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	if h.Subscribe(slow, "orders_changes", &Subscription{}, confirmTo(slow, "orders_changes", nil)) {
		t.Error("removed subscriber could subscribe again without registering")
	}
}

func TestHubSessionEndedAndUserSessionsEnded(t *testing.T) {
	h := NewHub()
	a1 := newFakeSub("a1", 0) // session A, user 1
	a2 := newFakeSub("a2", 0) // session A, user 1 (second tab)
	b := newFakeSub("b", 0)   // session B, user 1
	c := newFakeSub("c", 0)   // session C, user 2
	mustRegister(t, h, a1, "A", 1)
	mustRegister(t, h, a2, "A", 1)
	mustRegister(t, h, b, "B", 1)
	mustRegister(t, h, c, "C", 2)
	for _, s := range []*fakeSub{a1, a2, b, c} {
		mustSubscribe(t, h, s, "orders_changes", nil)
	}

	h.SessionEnded("A")
	for _, s := range []*fakeSub{a1, a2} {
		if got, want := s.closeCalls(), []closeCall{{1008, "session ended"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s closes = %v, want %v", s.name, got, want)
		}
	}
	for _, s := range []*fakeSub{b, c} {
		if got := s.closeCalls(); len(got) != 0 {
			t.Errorf("%s closed by another session's end: %v", s.name, got)
		}
	}
	h.SessionEnded("nobody")
	sessions := h.Sessions()
	if len(sessions) != 2 || !(sessions[0] == "B" && sessions[1] == "C" || sessions[0] == "C" && sessions[1] == "B") {
		t.Errorf("Sessions = %q, want B and C", sessions)
	}

	r1 := rec("orders", 1, `{}`)
	h.Publish([]Record{r1})

	h.UserSessionsEnded(1)
	if got, want := b.closeCalls(), []closeCall{{1008, "session ended"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("b closes = %v, want %v", got, want)
	}
	if got := c.closeCalls(); len(got) != 0 {
		t.Errorf("c closed by another user's disable: %v", got)
	}
	if got := len(a1.closeCalls()); got != 1 {
		t.Errorf("a1 closed %d times, want 1", got)
	}
	h.Publish([]Record{rec("orders", 2, `{}`)})

	sub0 := string(confirmMsg("orders_changes", 0))
	assertMessages(t, a1, sub0)
	assertMessages(t, a2, sub0)
	assertMessages(t, b, sub0, frames(r1)[0])
	assertMessages(t, c, sub0, frames(r1)[0], frames(rec("orders", 2, `{}`))[0])
	if st := h.Stats(); st.ConnectedClients != 1 || st.Subscriptions["orders_changes"] != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestHubShutdown(t *testing.T) {
	h := NewHub()
	a, b := newFakeSub("a", 0), newFakeSub("b", 0)
	mustRegister(t, h, a, "A", 1)
	mustRegister(t, h, b, "B", 2)
	mustSubscribe(t, h, a, "orders_changes", nil)
	h.Shutdown()
	for _, s := range []*fakeSub{a, b} {
		if got, want := s.closeCalls(), []closeCall{{1001, "server shutting down"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s closes = %v, want %v", s.name, got, want)
		}
	}
	late := newFakeSub("late", 0)
	if h.Register(late, "L", 3) {
		t.Error("Register after Shutdown = true")
	}
	if h.Subscribe(late, "orders_changes", &Subscription{}, confirmTo(late, "orders_changes", nil)) {
		t.Error("Subscribe after Shutdown = true")
	}
	h.Publish([]Record{rec("orders", 1, `{}`)})
	assertMessages(t, a, string(confirmMsg("orders_changes", 0)))
	assertMessages(t, late)
	want := Stats{ConnectedClients: 0, ActiveChannels: []string{}, Subscriptions: map[string]int{}, LastEventID: "1", EventsPublished: 1}
	if st := timeless(h.Stats()); !reflect.DeepEqual(st, want) {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	if s := h.Sessions(); len(s) != 0 {
		t.Errorf("Sessions after Shutdown = %q", s)
	}
}

func TestHubUnsubscribe(t *testing.T) {
	h := NewHub()
	s := newFakeSub("s", 0)
	if h.Unsubscribe(s, "orders_changes") {
		t.Error("Unsubscribe of an unregistered subscriber = true")
	}
	mustRegister(t, h, s, "sess", 1)
	if h.Unsubscribe(s, "orders_changes") {
		t.Error("Unsubscribe without a subscription = true")
	}
	mustSubscribe(t, h, s, "orders_changes", nil)
	mustSubscribe(t, h, s, "products_changes", nil)
	r1, p2 := rec("orders", 1, `{}`), rec("products", 2, `{}`)
	h.Publish([]Record{r1, p2})
	if !h.Unsubscribe(s, "orders_changes") {
		t.Fatal("Unsubscribe = false")
	}
	if h.Unsubscribe(s, "orders_changes") {
		t.Error("second Unsubscribe = true")
	}
	p4 := rec("products", 4, `{}`)
	h.Publish([]Record{rec("orders", 3, `{}`), p4})
	assertMessages(t, s, string(confirmMsg("orders_changes", 0)), string(confirmMsg("products_changes", 0)),
		frames(r1)[0], frames(p2)[0], frames(p4)[0])
	want := Stats{ConnectedClients: 1, ActiveChannels: []string{"products_changes"},
		Subscriptions: map[string]int{"products_changes": 1}, LastEventID: "4", EventsPublished: 4, EventsDelivered: 3}
	if st := timeless(h.Stats()); !reflect.DeepEqual(st, want) {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	h.Unregister(s)
	h.Unregister(s) // twice is harmless
	want = Stats{ConnectedClients: 0, ActiveChannels: []string{}, Subscriptions: map[string]int{}, LastEventID: "4", EventsPublished: 4, EventsDelivered: 3}
	if st := timeless(h.Stats()); !reflect.DeepEqual(st, want) {
		t.Errorf("Stats after Unregister = %+v, want %+v", st, want)
	}
}

func TestHubStats(t *testing.T) {
	h := NewHub()
	want := Stats{ConnectedClients: 0, ActiveChannels: []string{}, Subscriptions: map[string]int{}, LastEventID: "0"}
	if st := timeless(h.Stats()); !reflect.DeepEqual(st, want) {
		t.Errorf("empty Stats = %+v, want %+v", st, want)
	}
	subs := make([]*fakeSub, 4)
	for i := range subs {
		subs[i] = newFakeSub(strconv.Itoa(i), 0)
		mustRegister(t, h, subs[i], "s", int64(i))
	}
	mustSubscribe(t, h, subs[0], "users_changes", nil)
	mustSubscribe(t, h, subs[0], "orders_changes", nil)
	mustSubscribe(t, h, subs[1], "orders_changes", nil)
	mustSubscribe(t, h, subs[2], "products_changes", nil)
	h.SetPosition(1041)
	want = Stats{ConnectedClients: 4, ActiveChannels: []string{"orders_changes", "products_changes", "users_changes"},
		Subscriptions: map[string]int{"orders_changes": 2, "products_changes": 1, "users_changes": 1}, LastEventID: "1041"}
	st := h.Stats()
	if !reflect.DeepEqual(st, want) {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"connectedClients":4,"activeChannels":["orders_changes","products_changes","users_changes"],` +
		`"subscriptions":{"orders_changes":2,"products_changes":1,"users_changes":1},"eventsPublished":0,"eventsDelivered":0,"lastEventId":"1041","lastEventAt":null,"lastEventAgeSeconds":null}`
	if string(b) != wantJSON {
		t.Errorf("Stats JSON:\n got %s\nwant %s", b, wantJSON)
	}
	if got := h.Sessions(); !reflect.DeepEqual(got, []string{"s"}) {
		t.Errorf("Sessions = %q, want [s]", got)
	}
}

// TestHubConcurrent publishes while subscribers come and go. Run with -race.
// Every subscriber must see strictly increasing positions, never an event at or
// below a position it was confirmed, and a subscriber that stays subscribed must
// see every event after its confirmation.
func TestHubConcurrent(t *testing.T) {
	const (
		events  = 1000
		workers = 8
		rounds  = 60
		channel = "orders_changes"
	)
	h := NewHub()
	var (
		mu       sync.Mutex
		all      []*fakeSub
		stayers  []*fakeSub
		stayConf = map[*fakeSub]int64{}
	)
	keep := func(s *fakeSub) {
		mu.Lock()
		all = append(all, s)
		mu.Unlock()
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		<-start
		for pos := int64(1); pos <= events; {
			n := int64(1 + pos%3) // batches of 1 to 3
			var batch []Record
			for i := int64(0); i < n && pos <= events; i++ {
				batch = append(batch, rec("orders", pos, fmt.Sprintf(`{"id":%d,"status":"%s"}`, pos, []string{"pending", "paid"}[pos%2])))
				pos++
			}
			h.Publish(batch)
		}
	})
	for w := range workers {
		wg.Go(func() {
			<-start
			// One subscriber per worker stays subscribed from early on.
			stay := newFakeSub(fmt.Sprintf("stay-%d", w), 0)
			keep(stay)
			if !h.Register(stay, "stay", int64(w)) {
				t.Error("Register stay failed")
				return
			}
			var conf int64
			if !h.Subscribe(stay, channel, &Subscription{}, confirmTo(stay, channel, &conf)) {
				t.Error("Subscribe stay failed")
				return
			}
			mu.Lock()
			stayers = append(stayers, stay)
			stayConf[stay] = conf
			mu.Unlock()

			for r := range rounds {
				capacity := 0
				if r%5 == 4 {
					capacity = 1 + r%7 // small queue: removed when full
				}
				s := newFakeSub(fmt.Sprintf("w%d-r%d", w, r), capacity)
				keep(s)
				if !h.Register(s, fmt.Sprintf("sess-%d", w), int64(w)) {
					t.Error("Register failed")
					return
				}
				var sub *Subscription
				if r%3 == 0 {
					sub = &Subscription{Filter: Filter{"status": {[]byte(`"pending"`)}}}
				} else {
					sub = &Subscription{}
				}
				h.Subscribe(s, channel, sub, confirmTo(s, channel, nil))
				h.Subscribe(s, channel, &Subscription{}, confirmTo(s, channel, nil)) // replace
				h.Unsubscribe(s, channel)
				h.Subscribe(s, channel, sub, confirmTo(s, channel, nil))
				_ = h.Stats()
				if r%2 == 0 {
					h.Unregister(s)
				}
			}
		})
	}
	close(start)
	wg.Wait()

	if got := h.Position(); got != events {
		t.Fatalf("Position = %d, want %d", got, events)
	}
	type subscribed struct {
		Type     string `json:"type"`
		Position string `json:"position"`
		ID       string `json:"id"`
	}
	deliveries := 0
	for _, s := range all {
		var last, watermark int64 = 0, -1
		for i, m := range s.messages() {
			var msg subscribed
			if err := json.Unmarshal([]byte(m), &msg); err != nil {
				t.Fatalf("%s message %d: %v: %s", s.name, i, err, m)
			}
			switch msg.Type {
			case "subscribed":
				p, _ := strconv.ParseInt(msg.Position, 10, 64)
				if p < last || p < watermark {
					t.Fatalf("%s: confirmed at %d after seeing %d (previous confirm %d)", s.name, p, last, watermark)
				}
				watermark = p
			case "event":
				p, _ := strconv.ParseInt(msg.ID, 10, 64)
				if watermark < 0 {
					t.Fatalf("%s: event %d before any confirmation", s.name, p)
				}
				if p <= last || p <= watermark {
					t.Fatalf("%s: event %d after event %d, confirmed at %d", s.name, p, last, watermark)
				}
				last = p
				deliveries++
			default:
				t.Fatalf("%s: unexpected message %s", s.name, m)
			}
		}
	}
	if len(stayers) != workers {
		t.Fatalf("%d subscribers stayed, want %d", len(stayers), workers)
	}
	for _, s := range stayers {
		msgs := s.messages()
		conf := stayConf[s]
		if want := 1 + events - int(conf); len(msgs) != want {
			t.Fatalf("%s confirmed at %d got %d messages, want %d", s.name, conf, len(msgs), want)
		}
		for i, m := range msgs[1:] {
			if want := fmt.Sprintf(`"id":"%d"`, conf+1+int64(i)); !strings.Contains(m, want) {
				t.Fatalf("%s message %d = %s, want %s", s.name, i+1, m, want)
			}
		}
	}
	if deliveries < workers {
		t.Fatalf("only %d deliveries", deliveries)
	}
}

// timeless drops the wall-clock fields of Stats for comparison.
func timeless(st Stats) Stats {
	st.LastEventAt, st.LastEventAgeSecs = nil, nil
	return st
}

// wakeSub counts wake-ups: the first frame queued since the last Wake asks for one.
type wakeSub struct {
	frames, wakes int
	unwoken       bool
}

func (s *wakeSub) SendEvent([]byte, time.Time) (bool, bool) {
	s.frames++
	wake := !s.unwoken
	s.unwoken = true
	return true, wake
}
func (s *wakeSub) Wake()                { s.wakes++; s.unwoken = false }
func (s *wakeSub) Close(int, string)    {}
func (s *wakeSub) Send(msg []byte) bool { return true }

func TestHubWakesEachSubscriberOncePerPublish(t *testing.T) {
	h := NewHub()
	a, b := &wakeSub{}, &wakeSub{}
	for _, s := range []*wakeSub{a, b} {
		h.Register(s, "x", 1)
		h.Subscribe(s, "orders_changes", &Subscription{}, func(int64) bool { return true })
	}
	recs := make([]Record, 50)
	for i := range recs {
		recs[i] = Record{Position: int64(i + 1), Entity: "orders", Action: "updated", Data: []byte(`{}`)}
	}
	h.Publish(recs)
	h.Publish(recs[:3])
	for _, s := range []*wakeSub{a, b} {
		if s.frames != 53 || s.wakes != 2 {
			t.Fatalf("frames %d wakes %d, want 53 frames and 2 wakes", s.frames, s.wakes)
		}
	}
}

func TestHubWaitPosition(t *testing.T) {
	h := NewHub()
	h.SetPosition(5)
	if !h.WaitPosition(context.Background(), 5) {
		t.Fatal("position 5 reached: WaitPosition must return at once")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if h.WaitPosition(ctx, 6) {
		t.Fatal("position 6 not reached, context ended: want false")
	}
	done := make(chan bool)
	go func() { done <- h.WaitPosition(context.Background(), 8) }()
	h.Publish([]Record{{Position: 6, Entity: "order", Action: "updated", Data: []byte(`{}`)}})
	h.SetPosition(8) // a jump without events (a new sequencer's term)
	if !<-done {
		t.Fatal("WaitPosition(8) did not see the jump to 8")
	}
}

// A reader of some channels sees their subscriptions, counts and last event
// alone: nothing of the traffic of the others.
func TestHubStatsOfSomeChannels(t *testing.T) {
	h := NewHub()
	a, b := newFakeSub("a", 0), newFakeSub("b", 0)
	mustRegister(t, h, a, "s", 1)
	mustRegister(t, h, b, "t", 2)
	mustSubscribe(t, h, a, "orders_changes", nil)
	mustSubscribe(t, h, a, "payments_changes", nil)
	mustSubscribe(t, h, b, "orders_changes", nil)
	h.Publish([]Record{rec("orders", 5, `{}`), rec("payments", 6, `{}`), rec("payments", 7, `{}`)})
	h.SetPosition(9) // positions jumped: only a reader of everything sees it

	orders := func(ch string) bool { return ch == "orders_changes" }
	st := timeless(h.StatsOf(orders))
	want := Stats{ConnectedClients: 2, ActiveChannels: []string{"orders_changes"}, Subscriptions: map[string]int{"orders_changes": 2},
		EventsPublished: 1, EventsDelivered: 2, LastEventID: "5"}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("StatsOf(orders) = %+v, want %+v", st, want)
	}
	if at := h.StatsOf(orders).LastEventAt; at == nil || !at.Equal(hubTime) {
		t.Errorf("StatsOf(orders).LastEventAt = %v, want %v", at, hubTime)
	}
	all := timeless(h.Stats())
	want = Stats{ConnectedClients: 2, ActiveChannels: []string{"orders_changes", "payments_changes"},
		Subscriptions: map[string]int{"orders_changes": 2, "payments_changes": 1}, EventsPublished: 3, EventsDelivered: 4, LastEventID: "9"}
	if !reflect.DeepEqual(all, want) {
		t.Errorf("Stats = %+v, want %+v", all, want)
	}
	none := timeless(h.StatsOf(func(string) bool { return false }))
	if none.EventsPublished != 0 || none.LastEventID != "0" || len(none.ActiveChannels) != 0 {
		t.Errorf("StatsOf(nothing) = %+v", none)
	}
}

// reentrantSub calls back into the hub from every callback, as the Hub's
// documentation allows: Position, Connected, Sessions and Register from
// SendEvent, Wake and confirm; Unregister and a Subscribe from Close. Under
// the hub's state lock any of these would deadlock.
type reentrantSub struct {
	*fakeSub
	h     *Hub
	extra *fakeSub // registered from a callback
}

func (s *reentrantSub) touch() {
	_ = s.h.Position()
	_ = s.h.Connected()
	_ = s.h.Sessions()
	_ = s.h.Published()
	s.h.Register(s.extra, "extra", 9)
}

func (s *reentrantSub) SendEvent(msg []byte, at time.Time) (bool, bool) {
	s.touch()
	return s.fakeSub.SendEvent(msg, at)
}

func (s *reentrantSub) Wake() { s.touch() }

func (s *reentrantSub) Close(code int, reason string) {
	s.fakeSub.Close(code, reason)
	s.h.Unregister(s)
	if s.h.Subscribe(s, "orders_changes", &Subscription{}, func(int64) bool { return true }) {
		panic("a removed subscriber could subscribe again")
	}
	_ = s.h.Stats()
}

// A subscriber whose callbacks re-enter the hub does not deadlock it, and
// the hub's order holds meanwhile: "subscribed" first, then every event
// after its position, and nothing after the close.
func TestHubCallbacksMayReenter(t *testing.T) {
	h := NewHub()
	s := &reentrantSub{fakeSub: newFakeSub("reentrant", 0), h: h, extra: newFakeSub("extra", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Publish([]Record{rec("orders", 1, `{"id":1}`)})
		if !h.Register(s, "sess", 1) {
			t.Error("Register failed")
			return
		}
		var conf int64
		if !h.Subscribe(s, "orders_changes", &Subscription{}, func(pos int64) bool {
			s.touch()
			conf = pos
			return s.Send(confirmMsg("orders_changes", pos))
		}) {
			t.Error("Subscribe failed")
			return
		}
		if conf != 1 {
			t.Errorf("confirmed at %d, want 1", conf)
		}
		h.Publish([]Record{rec("orders", 2, `{"id":2}`), rec("orders", 3, `{"id":3}`)})
		h.SessionEnded("sess")
		h.Publish([]Record{rec("orders", 4, `{"id":4}`)})
	}()
	select {
	case <-done:
	case <-time.After(waitfor.Deadline):
		t.Fatal("the hub deadlocked on a callback that re-entered it")
	}
	assertMessages(t, s.fakeSub, append([]string{string(confirmMsg("orders_changes", 1))},
		frames(rec("orders", 2, `{"id":2}`), rec("orders", 3, `{"id":3}`))...)...)
	if got := s.closeCalls(); len(got) != 1 || got[0].code != ClosePolicyViolation {
		t.Fatalf("close calls %v, want one 1008", got)
	}
	if n := h.Connected(); n != 1 { // the extra one, registered from a callback
		t.Fatalf("%d connected, want 1", n)
	}
}
