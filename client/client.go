package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of a Client.
const (
	DefaultMinBackoff   = time.Second      // the first reconnect waits up to this
	DefaultMaxBackoff   = 30 * time.Second // no reconnect waits longer
	DefaultPingInterval = 30 * time.Second // how often an idle socket is pinged
	DefaultTimeout      = 15 * time.Second // bound of a login and of a socket handshake
	DefaultReadLimit    = 64 << 20         // one message can carry a whole (large) row
)

// Client talks to one shopstream service. It is safe for concurrent use.
type Client struct {
	base         *url.URL
	http         *http.Client
	backoff      func(attempt int) time.Duration
	pingInterval time.Duration
	timeout      time.Duration
	readLimit    int64

	mu              sync.Mutex
	email, password string // from the last successful Login, for logging in again
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client use hc for the login and the socket
// handshake. hc must have a cookie jar unless it already carries a session
// some other way; New gives it one when it has none.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithBackoff sets the delay before reconnect attempt n (0-based, reset once
// a socket is established). The default is FullJitter(DefaultMinBackoff,
// DefaultMaxBackoff).
func WithBackoff(delay func(attempt int) time.Duration) Option {
	return func(c *Client) { c.backoff = delay }
}

// WithPingInterval sets how often the socket is pinged so that a dead link is
// noticed; 0 turns pings off.
func WithPingInterval(d time.Duration) Option { return func(c *Client) { c.pingInterval = d } }

// WithTimeout bounds each login request and each socket handshake.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithReadLimit bounds the size of one frame from the server.
func WithReadLimit(n int64) Option { return func(c *Client) { c.readLimit = n } }

// New returns a client of the service at baseURL (http or https, with an
// optional path prefix).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("base URL must be http://host[:port] or https://host[:port], got %q", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	c := &Client{
		base: u, backoff: FullJitter(DefaultMinBackoff, DefaultMaxBackoff),
		pingInterval: DefaultPingInterval, timeout: DefaultTimeout, readLimit: DefaultReadLimit,
	}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.http.Jar == nil {
		jar, err := cookiejar.New(nil)
		if err != nil {
			return nil, fmt.Errorf("creating cookie jar: %w", err)
		}
		c.http.Jar = jar
	}
	return c, nil
}

// HTTPClient is the client's HTTP client: after Login it carries the session
// cookie, for the service's REST API.
func (c *Client) HTTPClient() *http.Client { return c.http }

// Login errors, matched with errors.Is against a *LoginError.
var (
	ErrInvalidCredentials = errors.New("wrong email or password") // HTTP 401
	ErrThrottled          = errors.New("too many failed logins")  // HTTP 429
	ErrBusy               = errors.New("the service is busy")     // HTTP 503
)

// LoginError is a login the service refused.
type LoginError struct {
	Status     int           // the HTTP status
	Code       string        // the body's "error", e.g. "invalid_credentials"
	Message    string        // the body's "message"
	RetryAfter time.Duration // from Retry-After (429, 503); 0 when absent
}

func (e *LoginError) Error() string {
	msg := fmt.Sprintf("logging in: HTTP %d %s: %s", e.Status, e.Code, e.Message)
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %d s)", int(e.RetryAfter/time.Second))
	}
	return msg
}

// Is makes errors.Is(err, ErrInvalidCredentials) (and ErrThrottled, ErrBusy)
// true for the matching status.
func (e *LoginError) Is(target error) bool {
	switch target {
	case ErrInvalidCredentials:
		return e.Status == http.StatusUnauthorized
	case ErrThrottled:
		return e.Status == http.StatusTooManyRequests
	case ErrBusy:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

// ErrCookieNotSendable is a login that worked but whose session cookie the
// jar will not send to the socket: a Secure cookie over plain http.
var ErrCookieNotSendable = errors.New("logged in, but the session cookie cannot be sent to this URL " +
	"(a Secure cookie over plain http: use https, or COOKIE_SECURE=false on the server)")

// Login posts the credentials; the cookie jar keeps the session. A Stream
// logs in again with them once when the server ends the session (1008).
func (c *Client) Login(ctx context.Context, email, password string) error {
	if err := c.login(ctx, email, password); err != nil {
		return err
	}
	c.mu.Lock()
	c.email, c.password = email, password
	c.mu.Unlock()
	return nil
}

func (c *Client) login(ctx context.Context, email, password string) error {
	body, err := json.Marshal(map[string]string{"email": email, "password": password})
	if err != nil {
		return fmt.Errorf("encoding login: %w", err)
	}
	lctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(lctx, http.MethodPost, c.base.String()+LoginPath, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building login request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return loginError(resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if len(c.http.Jar.Cookies(c.socketHTTPURL())) == 0 {
		return ErrCookieNotSendable
	}
	return nil
}

func loginError(resp *http.Response) *LoginError {
	var body struct{ Error, Message string }
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	_ = json.Unmarshal(b, &body)
	e := &LoginError{Status: resp.StatusCode, Code: body.Error, Message: body.Message}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(b))
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	return e
}

// credentials are those of the last successful Login.
func (c *Client) credentials() (email, password string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.email, c.password, c.email != ""
}

// socketHTTPURL is the socket's address in http(s) form, for the cookie jar.
func (c *Client) socketHTTPURL() *url.URL {
	u := *c.base
	u.Path += SocketPath
	return &u
}

func (c *Client) socketURL() string {
	u := c.socketHTTPURL()
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	return u.String()
}
