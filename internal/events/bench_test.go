package events

import (
	"fmt"
	"testing"
	"time"
)

// countSub is a Subscriber that only counts what it is sent. The hub calls Send
// under its lock, so the count needs no synchronisation of its own.
type countSub struct{ n int }

func (s *countSub) SendEvent([]byte, time.Time) (bool, bool) { s.n++; return true, false }
func (s *countSub) Wake()                                    {}
func (s *countSub) Close(int, string)                        {}

const (
	benchOld = `{"id":1042,"customer_id":45,"status":"pending","total":129.90,"currency":"EUR",` +
		`"items":[{"sku":"A-100","qty":2,"price":39.95},{"sku":"B-220","qty":1,"price":50.00}],` +
		`"shipping_address":{"name":"Ada Lovelace","street":"1 Analytical Way","city":"London","zip":"N1 9GU"},` +
		`"notes":null,"password_hash":"$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",` +
		`"created_at":"2026-01-25T10:00:00.000Z","updated_at":"2026-01-25T10:00:00.000Z"}`
	benchNew = `{"id":1042,"customer_id":45,"status":"shipped","total":129.90,"currency":"EUR",` +
		`"items":[{"sku":"A-100","qty":2,"price":39.95},{"sku":"B-220","qty":1,"price":50.00}],` +
		`"shipping_address":{"name":"Ada Lovelace","street":"1 Analytical Way","city":"London","zip":"N1 9GU"},` +
		`"notes":null,"password_hash":"$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",` +
		`"created_at":"2026-01-25T10:00:00.000Z","updated_at":"2026-01-25T10:30:00.000Z"}`
)

func benchChange() Change {
	return Change{ID: 1, Entity: "orders", Action: "updated", Old: []byte(benchOld), New: []byte(benchNew),
		Actor: "admin@shop.io", At: time.Date(2026, 1, 25, 10, 30, 0, 0, time.UTC)}
}

func benchRecord(b *testing.B) Record {
	rec, ok, err := Build(benchChange(), testCols)
	if err != nil || !ok {
		b.Fatalf("Build: ok=%v err=%v", ok, err)
	}
	rec.Position = 1042
	return rec
}

// BenchmarkHubPublish publishes one order update per op to n subscribers of its
// channel; ns/op is per published event.
func BenchmarkHubPublish(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			h := NewHub()
			subs := make([]*countSub, n)
			for i := range subs {
				subs[i] = &countSub{}
				h.Register(subs[i], "sess", int64(i))
				h.Subscribe(subs[i], "orders_changes", &Subscription{}, func(int64) bool { return true })
			}
			recs := []Record{benchRecord(b)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				recs[0].Position = int64(i + 1)
				h.Publish(recs)
			}
			b.StopTimer()
			total := 0
			for _, s := range subs {
				total += s.n
			}
			if total != n*b.N {
				b.Fatalf("%d deliveries, want %d", total, n*b.N)
			}
			if sec := b.Elapsed().Seconds(); sec > 0 {
				b.ReportMetric(float64(total)/sec, "deliveries/s")
			}
		})
	}
}

func BenchmarkFrame(b *testing.B) {
	rec := benchRecord(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(rec.Frame())))
	for b.Loop() {
		_ = rec.Frame()
	}
}

func BenchmarkBuildUpdate(b *testing.B) {
	c := benchChange()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := Build(c, testCols); !ok || err != nil {
			b.Fatal("Build failed")
		}
	}
}

// BenchmarkMatchesFilter measures a filtered subscription: "parse" includes
// parsing the event's row (once per event in the hub), "cached" is each further
// subscriber of the same event.
func BenchmarkMatchesFilter(b *testing.B) {
	rec := benchRecord(b)
	sub := &Subscription{Filter: mustFilter(b, `{"status":["pending","paid"],"customer_id":45}`)}
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ev := Event{Record: rec}
			if !sub.Matches(&ev) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		ev := Event{Record: rec}
		b.ReportAllocs()
		for b.Loop() {
			if !sub.Matches(&ev) {
				b.Fatal("no match")
			}
		}
	})
}
