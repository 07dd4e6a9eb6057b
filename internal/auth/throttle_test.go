package auth

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a Throttle's injected time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newTestThrottle() (*Throttle, *clock) {
	c := &clock{t: time.Unix(1e9, 0)}
	t := NewThrottle()
	t.now = c.now
	return t, c
}

var (
	pairLimit    = Limit{Burst: 5, Every: 30 * time.Second}
	addressLimit = Limit{Burst: 20, Every: 5 * time.Second}
	accountLimit = Limit{Burst: 100, Every: 10 * time.Second}
)

func keys(account, address string) []Key {
	return []Key{
		{Name: "pair:" + address + " " + account, Limit: pairLimit, ResetOnSuccess: true},
		{Name: "address:" + address, Limit: addressLimit},
		{Name: "account:" + account, Limit: accountLimit},
	}
}

func TestThrottleReservesBeforeTheCheck(t *testing.T) {
	th, _ := newTestThrottle()
	var granted, refused atomic.Int32
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			if g, wait := th.Reserve(keys("admin", "a")...); g != nil {
				granted.Add(1)
				g.Failed()
			} else if wait > 0 {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if granted.Load() != 5 || refused.Load() != 35 {
		t.Fatalf("40 concurrent guesses: %d evaluated, %d refused; want 5 and 35", granted.Load(), refused.Load())
	}
}

func TestThrottleRefillsOneGuessPerPeriod(t *testing.T) {
	th, clk := newTestThrottle()
	for range 5 {
		g, _ := th.Reserve(keys("admin", "a")...)
		g.Failed()
	}
	_, wait := th.Reserve(keys("admin", "a")...)
	if wait != 30*time.Second {
		t.Fatalf("wait after 5 failures: %v, want 30s", wait)
	}
	clk.advance(20 * time.Second)
	if _, wait := th.Reserve(keys("admin", "a")...); wait != 10*time.Second {
		t.Fatalf("wait 20 s later: %v, want 10s", wait)
	}
	clk.advance(10 * time.Second)
	g, _ := th.Reserve(keys("admin", "a")...)
	if g == nil {
		t.Fatal("no guess after the refill")
	}
	g.Failed()
	if g, _ := th.Reserve(keys("admin", "a")...); g != nil {
		t.Fatal("a second guess after one refill")
	}
}

func TestThrottleStrangerCannotLockOutTheUser(t *testing.T) {
	th, _ := newTestThrottle()
	refused := 0
	for range 50 { // a stranger at one address guessing the admin's password
		if g, _ := th.Reserve(keys("admin", "stranger")...); g != nil {
			g.Failed()
		} else {
			refused++
		}
	}
	if refused != 45 {
		t.Fatalf("stranger: %d of 50 refused, want 45", refused)
	}
	if g, wait := th.Reserve(keys("admin", "office")...); g == nil {
		t.Fatalf("the admin at the office is throttled (%v) by a stranger", wait)
	}
}

func TestThrottleAccountCeilingBoundsDistributedGuessing(t *testing.T) {
	th, clk := newTestThrottle()
	for i := range 100 { // 100 addresses, one guess each
		g, _ := th.Reserve(keys("admin", "bot"+strconv.Itoa(i))...)
		if g == nil {
			t.Fatalf("guess %d refused under the ceiling", i)
		}
		g.Failed()
	}
	_, wait := th.Reserve(keys("admin", "another bot")...)
	if wait != 10*time.Second {
		t.Fatalf("101st guess at the account: wait %v, want 10s", wait)
	}
	if g, _ := th.Reserve(keys("someone else", "another bot")...); g == nil {
		t.Fatal("the ceiling of one account throttled another")
	}
	clk.advance(10 * time.Second)
	if g, _ := th.Reserve(keys("admin", "another bot")...); g == nil {
		t.Fatal("no guess after the account refilled one")
	}
}

func TestThrottleSuccessResetsThePairAndGivesBackTheRest(t *testing.T) {
	th, _ := newTestThrottle()
	for range 4 {
		g, _ := th.Reserve(keys("admin", "a")...)
		g.Failed()
	}
	g, _ := th.Reserve(keys("admin", "a")...)
	g.Succeeded()
	for i := range 5 { // the pair starts over
		g, _ := th.Reserve(keys("admin", "a")...)
		if g == nil {
			t.Fatalf("guess %d after a success refused", i)
		}
		g.Failed()
	}
	if th.buckets["address:a"].tokens != 20-9 || th.buckets["account:admin"].tokens != 100-9 {
		t.Fatalf("address and account: %v and %v tokens, want 11 and 91 (9 failures, the success given back)",
			th.buckets["address:a"].tokens, th.buckets["account:admin"].tokens)
	}
}

func TestThrottleCancelGivesBackEverything(t *testing.T) {
	th, _ := newTestThrottle()
	for range 10 {
		g, _ := th.Reserve(keys("admin", "a")...)
		if g == nil {
			t.Fatal("a cancelled guess was counted")
		}
		g.Cancel()
	}
}

func TestThrottlePrunesRefilledBuckets(t *testing.T) {
	th, clk := newTestThrottle()
	for i := range maxKeys / 3 {
		g, _ := th.Reserve(keys("user"+strconv.Itoa(i), "a"+strconv.Itoa(i))...)
		if g != nil {
			g.Failed()
		}
	}
	before := len(th.buckets)
	clk.advance(time.Hour)
	for range 10 {
		g, _ := th.Reserve(keys("new", "b")...)
		if g != nil {
			g.Failed()
		}
	}
	if before < maxKeys-10 || len(th.buckets) > 10 {
		t.Fatalf("buckets: %d before, %d after an hour and one pruning; want the refilled ones dropped", before, len(th.buckets))
	}
}
