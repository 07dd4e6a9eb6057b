package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopstream/shopstream/internal/wire"
)

// loginsResult is scenario 7: a flood of concurrent anonymous logins, each a
// new email from a new address (so the throttle lets every one through to the
// password check), and a logged-in user's GET /api/auth/me during it.
type loginsResult struct {
	Concurrency       int
	Secs              float64
	Statuses          map[string]int // "401 invalid_credentials", "503 busy", …
	StartRSSKiB       int64
	PeakKiB           int64 // VmHWM of a fresh server: the flood's peak
	MeIdle, MeFlood   summary
	MeErrors          int // /me answers other than 200 during the flood
	ServerCPU, CliCPU float64
}

func logins(ctx context.Context, o options, dbURL string) (loginsResult, error) {
	r := loginsResult{Concurrency: o.logins, Secs: o.levelDur.Seconds(), Statuses: map[string]int{}}
	srv, err := startServer(o.bin, dbURL, "TRUST_PROXY_HEADERS=true")
	if err != nil {
		return r, err
	}
	defer srv.stop()
	r.StartRSSKiB = settledRSS(srv.pid)
	me := func(until time.Time) (summary, int) {
		var d []time.Duration
		bad := 0
		for time.Now().Before(until) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.base+"/api/auth/me", nil)
			req.Header = srv.cookieHdr.Clone()
			t0 := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			d = append(d, time.Since(t0))
			if err != nil || resp.StatusCode != 200 {
				bad++
			}
			time.Sleep(10 * time.Millisecond)
		}
		return summarize(d), bad
	}
	r.MeIdle, _ = me(time.Now().Add(2 * time.Second))

	tr := &http.Transport{MaxIdleConns: o.logins, MaxIdleConnsPerHost: o.logins}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	var mu sync.Mutex
	var n atomic.Int64
	var wg sync.WaitGroup
	cpu0, cli0 := procCPU(srv.pid), selfCPU()
	end := time.Now().Add(o.levelDur)
	for range o.logins {
		wg.Go(func() {
			for time.Now().Before(end) {
				i := n.Add(1)
				body := fmt.Sprintf(`{"email":"flood%d@example.com","password":"not the password"}`, i)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.base+wire.LoginPath, bytes.NewReader([]byte(body)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.18.%d.%d", i/256%256, i%256))
				key := "error"
				resp, err := client.Do(req)
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					key = strconv.Itoa(resp.StatusCode) + " " + errorCode(b)
				}
				mu.Lock()
				r.Statuses[key]++
				mu.Unlock()
			}
		})
	}
	r.MeFlood, r.MeErrors = me(end)
	wg.Wait()
	r.ServerCPU, r.CliCPU = procCPU(srv.pid)-cpu0, selfCPU()-cli0
	r.PeakKiB = procStatusKiB(srv.pid, "VmHWM")
	logf("  %d concurrent logins for %.0f s: %v; server RSS %d KiB at start, peak %d KiB; /me p99 %s ms idle, %s ms during the flood (%d not 200)",
		r.Concurrency, r.Secs, r.Statuses, r.StartRSSKiB, r.PeakKiB, ms(r.MeIdle.P99), ms(r.MeFlood.P99), r.MeErrors)
	return r, nil
}

// errorCode is the "error" field of an error body, "" when there is none.
func errorCode(b []byte) string {
	_, after, ok := bytes.Cut(b, []byte(`"error":"`))
	if !ok {
		return ""
	}
	code, _, _ := bytes.Cut(after, []byte(`"`))
	return string(code)
}

// selfCPU is this process's CPU seconds.
func selfCPU() float64 { return procCPU(os.Getpid()) }

func (r *report) loginsSection(b *strings.Builder) {
	p := func(f string, a ...any) { fmt.Fprintf(b, f, a...) }
	g := r.logins
	p("## 7. Login flood: memory bounded, logged-in users served\n\n")
	if g.Concurrency == 0 {
		p("Not run.\n\n")
		return
	}
	p("A fresh server with `TRUST_PROXY_HEADERS=true` and the default login limits (`LOGIN_HASH_CONCURRENCY=2`, `LOGIN_HASH_QUEUE=16`); %d client goroutines each post logins back to back for %.0f s, every one with a new unknown email from a new `X-Forwarded-For` address (198.18.0.0/15), so that no throttle refuses them and each one asks for an argon2id check (19 MiB). Meanwhile the bench session calls `GET /api/auth/me` every 10 ms; the same for 2 s before the flood, idle.\n\n", g.Concurrency, g.Secs)
	keys := make([]string, 0, len(g.Statuses))
	total := 0
	for k, v := range g.Statuses {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	p("| measure | value |\n|---|---|\n")
	for _, k := range keys {
		p("| logins answered `%s` | %d (%.0f/s) |\n", k, g.Statuses[k], float64(g.Statuses[k])/g.Secs)
	}
	p("| server RSS after start | %.1f MiB |\n| **server peak RSS (VmHWM)** | **%.1f MiB** |\n", float64(g.StartRSSKiB)/1024, float64(g.PeakKiB)/1024)
	p("| `GET /api/auth/me` idle: p50 / p99 / max | %s / %s / %s ms (%d requests) |\n", ms(g.MeIdle.P50), ms(g.MeIdle.P99), ms(g.MeIdle.Max), g.MeIdle.N)
	p("| **`GET /api/auth/me` during the flood: p50 / p99 / max** | %s / **%s** / %s ms (%d requests, %d not 200) |\n", ms(g.MeFlood.P50), ms(g.MeFlood.P99), ms(g.MeFlood.Max), g.MeFlood.N, g.MeErrors)
	p("| CPU over the flood: server / load client | %.1f / %.1f s |\n\n", g.ServerCPU, g.CliCPU)
}
