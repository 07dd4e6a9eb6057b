package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/shopstream/shopstream/internal/config"
)

// cmdHealth is the probe a container runs without a shell (the Dockerfile's
// HEALTHCHECK): GET /healthz, or /readyz with --ready, on this instance's
// LISTEN_ADDR; exit 0 on 200, 1 otherwise.
func cmdHealth(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("health", e)
	ready := fs.Bool("ready", false, "check /readyz (database answers, listener connected, not draining) instead of /healthz (the process serves)")
	base := fs.String("url", "", "the instance's base URL (default: http://LISTEN_ADDR, on loopback when LISTEN_ADDR's host is unspecified)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" {
		cfg, err := config.Load(e.getenv)
		if err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
		*base = localURL(cfg.ListenAddr)
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	url := strings.TrimSuffix(*base, "/") + path
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	status, body, err := fetchHealth(ctx, url)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("health: GET %s: %d %s", url, status, body)
	}
	fmt.Fprintf(e.stdout, "ok: GET %s: %d %s\n", url, status, body)
	return nil
}

// localURL is how a process on the same host reaches addr: an unspecified
// host (":3000", "0.0.0.0:3000", "[::]:3000") is the loopback address.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// fetchHealth fetches url and returns its status and its body on one line.
func fetchHealth(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return 0, "", fmt.Errorf("reading %s: %w", url, err)
	}
	var compact bytes.Buffer
	if json.Compact(&compact, b) != nil {
		return resp.StatusCode, strings.TrimSpace(string(b)), nil
	}
	return resp.StatusCode, compact.String(), nil
}
