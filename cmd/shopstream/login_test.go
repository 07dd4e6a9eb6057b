package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shopstream/shopstream/internal/waitfor"
)

// loginReply is what one login attempt got.
type loginReply struct {
	Status     int
	Code       string // the error code of the body
	RetryAfter string
}

// loginFrom tries a login as a client at addr (X-Forwarded-For: the server
// must run with TRUST_PROXY_HEADERS=true; "" is the direct address). It may be
// called from any goroutine.
func loginFrom(s *testServer, email, password, addr string) (loginReply, error) {
	b, _ := json.Marshal(map[string]string{"email": email, "password": password})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/auth/login", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	if addr != "" {
		req.Header.Set("X-Forwarded-For", addr)
	}
	resp, err := (&http.Client{Timeout: waitfor.Deadline}).Do(req)
	if err != nil {
		return loginReply{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct{ Error string }
	_ = json.Unmarshal(body, &e)
	return loginReply{Status: resp.StatusCode, Code: e.Error, RetryAfter: resp.Header.Get("Retry-After")}, nil
}

func mustLoginFrom(t *testing.T, s *testServer, email, password, addr string) loginReply {
	t.Helper()
	r, err := loginFrom(s, email, password, addr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func checkRetryAfter(t *testing.T, what string, r loginReply, lo, hi int) {
	t.Helper()
	if n, err := strconv.Atoi(r.RetryAfter); err != nil || n < lo || n > hi {
		t.Errorf("%s: Retry-After %q, want %d..%d", what, r.RetryAfter, lo, hi)
	}
}

// 40 parallel wrong passwords for one account from one address: exactly the
// pair's 5 are evaluated (401), the other 35 refused before any hashing (429).
// The right password is then refused too from that address (the throttle
// reserves before it checks anything), but not from the user's other address.
func TestLoginParallelGuessesAreReservedBeforeTheCheck(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, map[string]string{"TRUST_PROXY_HEADERS": "true"})
	const attacker = "203.0.113.10"
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			r, err := loginFrom(s, "admin@example.com", "wrong password "+strconv.Itoa(i), attacker)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			counts[r.Status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if counts[http.StatusUnauthorized] != 5 || counts[http.StatusTooManyRequests] != 35 || len(counts) != 2 {
		t.Fatalf("40 parallel wrong passwords: %v, want exactly 5 × 401 and 35 × 429", counts)
	}
	r := mustLoginFrom(t, s, "admin@example.com", testPassword, attacker)
	if r.Status != http.StatusTooManyRequests || r.Code != "too_many_attempts" {
		t.Fatalf("right password from the throttled address: %+v, want 429 too_many_attempts", r)
	}
	checkRetryAfter(t, "throttled pair", r, 1, 30)
	if r := mustLoginFrom(t, s, "admin@example.com", testPassword, "198.51.100.20"); r.Status != http.StatusOK {
		t.Fatalf("right password from another address: %+v, want 200", r)
	}
}

// A stranger failing again and again elsewhere does not keep the admin at
// their own address from logging in.
func TestLoginStrangerCannotLockOutTheUser(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, map[string]string{"TRUST_PROXY_HEADERS": "true"})
	throttled := 0
	for i := range 30 {
		r := mustLoginFrom(t, s, "admin@example.com", "guess "+strconv.Itoa(i), "203.0.113.66")
		switch r.Status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			throttled++
		default:
			t.Fatalf("stranger's guess %d: %+v", i, r)
		}
	}
	if throttled != 25 {
		t.Fatalf("stranger: %d of 30 guesses throttled, want 25 (5 evaluated)", throttled)
	}
	if r := mustLoginFrom(t, s, "admin@example.com", testPassword, "198.51.100.7"); r.Status != http.StatusOK {
		t.Fatalf("the admin at their address after a stranger's 30 failures: %+v, want 200", r)
	}
}

// The per-account ceiling (here 8) counts failures from every address: guesses
// spread over many addresses stop there, for that account only.
func TestLoginAccountCeilingBoundsDistributedGuessing(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, map[string]string{"TRUST_PROXY_HEADERS": "true", "LOGIN_LIMIT_ACCOUNT": "8/1h"})
	createAdmin(t, s.DBURL, "other@example.com", "support")
	for i := range 8 {
		if r := mustLoginFrom(t, s, "admin@example.com", "guess", fmt.Sprintf("203.0.113.%d", i+1)); r.Status != http.StatusUnauthorized {
			t.Fatalf("guess %d from its own address: %+v, want 401", i, r)
		}
	}
	r := mustLoginFrom(t, s, "admin@example.com", "guess", "203.0.113.99")
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("ninth address, account over its ceiling: %+v, want 429", r)
	}
	checkRetryAfter(t, "account ceiling", r, 3500, 3600)
	if r := mustLoginFrom(t, s, "other@example.com", testPassword, "203.0.113.99"); r.Status != http.StatusOK {
		t.Fatalf("another account from the same address: %+v, want 200", r)
	}
	// While the ceiling holds, a client new to the account is refused even
	// with the right password; the admin's own client (setup logged in from
	// 127.0.0.1, the direct address) is not: strangers cannot lock it out.
	if r := mustLoginFrom(t, s, "admin@example.com", testPassword, "198.51.100.50"); r.Status != http.StatusTooManyRequests {
		t.Fatalf("a new client while the account is over its ceiling: %+v, want 429", r)
	}
	if r := mustLoginFrom(t, s, "admin@example.com", testPassword, ""); r.Status != http.StatusOK {
		t.Fatalf("the admin's known client while strangers hold the ceiling: %+v, want 200", r)
	}
}

// One IPv6 host commonly holds a /64: its addresses are one address to the
// throttle, and an IPv4-mapped address is its IPv4 one.
func TestLoginIPv6PrefixIsOneAddress(t *testing.T) {
	t.Parallel()
	// An address limit that does not refill while the test runs (a busy
	// machine takes seconds over 20 logins; the default refills one per 5 s).
	s, _, _ := setup(t, map[string]string{"TRUST_PROXY_HEADERS": "true", "LOGIN_LIMIT_ADDRESS": "20/1h"})
	for i := range 20 {
		addr := fmt.Sprintf("2001:db8:1:2::%x", i+1)
		if r := mustLoginFrom(t, s, fmt.Sprintf("nobody%d@example.com", i), "guess", addr); r.Status != http.StatusUnauthorized {
			t.Fatalf("guess %d from %s: %+v, want 401", i, addr, r)
		}
	}
	if r := mustLoginFrom(t, s, "someone@example.com", "guess", "2001:db8:1:2:ffff:ffff:ffff:ffff"); r.Status != http.StatusTooManyRequests {
		t.Fatalf("the 21st guess from the same /64: %+v, want 429", r)
	}
	if r := mustLoginFrom(t, s, "someone@example.com", "guess", "2001:db8:1:3::1"); r.Status != http.StatusUnauthorized {
		t.Fatalf("another /64: %+v, want 401", r)
	}
	for i := range 20 {
		mustLoginFrom(t, s, fmt.Sprintf("v4-%d@example.com", i), "guess", "192.0.2.7")
	}
	if r := mustLoginFrom(t, s, "v4@example.com", "guess", "::ffff:192.0.2.7"); r.Status != http.StatusTooManyRequests {
		t.Fatalf("an IPv4-mapped address after 20 failures of its IPv4 form: %+v, want 429", r)
	}
}

// Password checks beyond LOGIN_HASH_CONCURRENCY (+ LOGIN_HASH_QUEUE waiting)
// are refused at once with 503 and Retry-After, and a logged-in user is still
// served while the flood goes on.
func TestLoginFloodBoundedWhileLoggedInUsersAreServed(t *testing.T) {
	t.Parallel()
	s, c, _ := setup(t, map[string]string{"TRUST_PROXY_HEADERS": "true", "LOGIN_HASH_CONCURRENCY": "1", "LOGIN_HASH_QUEUE": "0"})
	var (
		mu       sync.Mutex
		counts   = map[string]int{}
		badBusy  []loginReply
		stop     atomic.Bool
		n        atomic.Int64
		wg       sync.WaitGroup
		floodErr atomic.Value
	)
	for range 16 { // anonymous logins: every one a new email from a new address
		wg.Go(func() {
			for !stop.Load() {
				i := n.Add(1)
				r, err := loginFrom(s, fmt.Sprintf("nobody%d@example.com", i), "guess", fmt.Sprintf("198.18.%d.%d", i/256%256, i%256))
				if err != nil {
					floodErr.Store(err)
					return
				}
				mu.Lock()
				counts[strconv.Itoa(r.Status)+" "+r.Code]++
				if r.Status == http.StatusServiceUnavailable && (r.Code != "busy" || r.RetryAfter != "1") {
					badBusy = append(badBusy, r)
				}
				mu.Unlock()
			}
		})
	}
	seen := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return counts["503 busy"] > 0 && counts["401 invalid_credentials"] > 0
	}
	waitfor.Until(t, "the flood to be both checked (401) and refused (503)", seen)
	if resp := get(t, c, s.URL+"/api/auth/me"); resp.StatusCode != http.StatusOK {
		t.Errorf("logged-in GET /api/auth/me during the flood: %d", resp.StatusCode)
	}
	stop.Store(true)
	wg.Wait()
	if err, _ := floodErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 || len(badBusy) > 0 {
		t.Fatalf("flood outcomes %v (malformed 503s %v): want only 401 invalid_credentials and 503 busy with Retry-After: 1", counts, badBusy)
	}
	t.Logf("flood outcomes: %v", counts)
}

// An email PostgreSQL cannot take (a NUL) or no address at all is a bad request.
func TestLoginInvalidEmailIsBadRequest(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t, nil)
	for _, email := range []string{"admin@example.com\x00", "\x00", "admin@exa\x01mple.com", strings.Repeat("a", 250) + "@example.com"} {
		if r := mustLoginFrom(t, s, email, testPassword, ""); r.Status != http.StatusBadRequest || r.Code != "bad_request" {
			t.Errorf("email %q: %+v, want 400 bad_request", email, r)
		}
	}
}
