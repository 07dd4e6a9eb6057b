// Package config reads shopstream's settings from environment variables, applies
// defaults and validates them. Vars is the one table of the variables: their
// defaults (which Load parses, as it parses a set value), and the help that
// `shopstream help` prints and the README repeats. It holds no other state:
// Load takes a getenv func.
package config

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopstream/shopstream/internal/origin"
	"github.com/shopstream/shopstream/internal/wire"
)

// Entities are the five kinds of business rows shopstream streams, in the order the
// dashboards list them. Each has the channel "<entity>_changes".
var Entities = []string{"order", "product", "customer", "shipment", "transaction"}

// Table is one watched business table.
type Table struct {
	Entity  string   // order, product, customer, shipment or transaction
	Name    string   // schema-qualified table name, e.g. public.orders
	Secret  []string // columns that never leave the database (lower case; matched case-insensitively)
	Allowed []string // when set, the only columns that leave (besides the primary key); Secret still applies
	Ignored []string // columns whose change alone emits no event
}

// Channel is the socket channel that carries this table's events.
func (t Table) Channel() string { return wire.Channel(t.Entity) }

// Config is the whole configuration of one shopstream process.
type Config struct {
	DatabaseURL       string
	ListenDatabaseURL string // for the LISTEN connections; DatabaseURL when empty
	ListenAddr        string
	Development       bool

	CookieName         string
	CookieSecure       bool
	SessionIdleTimeout time.Duration
	SessionLifetime    time.Duration
	AllowedOrigins     []string    // extra Origin host patterns for the socket and POSTs
	TrustProxy         bool        // client address from X-Forwarded-For
	TrustedProxies     []net.IPNet // the proxies whose X-Forwarded-For entries are believed

	LoginPair      RateLimit // failed logins of one account from one address
	LoginAddress   RateLimit // failed logins from one address, all accounts
	LoginAccount   RateLimit // failed logins of one account, all addresses
	LoginHashes    int       // password checks running at once
	LoginHashQueue int       // password checks waiting beyond them

	Tables         []Table
	CaptureReplica bool // capture writes applied with session_replication_role = replica
	Retention      time.Duration
	PruneEvery     time.Duration
	TableCheck     time.Duration // how often serve checks the tables' capture triggers
	IdlePoll       time.Duration // the sequencer's poll after a quiet spell

	MaxEventBytes   int           // an event beyond it is replaced by a too_large marker
	SendQueue       int           // messages buffered per socket before it is closed 1013
	SendQueueBytes  int           // and their bytes
	MaxMessageBytes int64         // largest client frame
	WriteTimeout    time.Duration // deadline of every socket write
	PingInterval    time.Duration // WebSocket ping period
	MaxSockets      int           // open sockets on one instance
	MaxUserSockets  int           // open sockets of one user on one instance
	FrameWriter     string        // coalesced (internal/wsframe) or library (the WebSocket library's own writes)

	LogFormat string // text or json
	LogLevel  string // debug, info, warn, error

	// The HTTP edge: public names, server limits, metrics address.
	PublicURLs        []string      // origins the service is reached at; when set, Host must be one of theirs
	ReadHeaderTimeout time.Duration // to read a request's headers
	ReadTimeout       time.Duration // to read a whole request, body included (a socket, once upgraded, has none)
	IdleTimeout       time.Duration // a keep-alive connection idle this long is closed
	MaxBodyBytes      int64         // largest request body (login keeps its own 8 KiB)
	MaxConnections    int           // open TCP connections, sockets included; 0: from the descriptor limit
	MetricsAddr       string        // serve /metrics here instead of on LISTEN_ADDR
	MetricsDBInterval time.Duration // how often the database-derived gauges are read
	DebugAddr         string        // serve net/http/pprof here; none when empty
}

// RateLimit is a token bucket: Burst events, then one per Every. It is written
// "5/30s" in the environment.
type RateLimit struct {
	Burst int
	Every time.Duration
}

// Defaults of the column lists.
const (
	// DefaultSecretColumns always apply: SECRET_COLUMNS and
	// SECRET_COLUMNS_<ENTITY> add to them. Whole names, case-insensitive.
	DefaultSecretColumns = "password,password_hash,passwd,secret,client_secret,totp_secret,otp_secret," +
		"token,access_token,refresh_token,auth_token,session_token,reset_token,api_key,apikey,private_key," +
		"card_number,cc_number,pan,cvc,cvv,cvv2,card_cvc,security_code,account_number,iban,routing_number," +
		"ssn,social_security_number"
	DefaultIgnoredColumns = "updated_at"
)

// Var documents one environment variable; Vars lists them all for --help and docs.
//
// Default is the single statement of the variable's default: Load parses it
// when the variable is unset or blank, with the same parser as a set value.
// It is a value, optionally followed by a parenthesised note, and the note
// names a rule Load applies when the variable is unset: "true (false in
// development)" parses "true" and Load turns it off in development;
// "(DATABASE_URL)" is no value at all and Load takes DATABASE_URL's.
type Var struct{ Name, Default, Help string }

// Value is the part of Default that Load parses: Default without its note.
func (v Var) Value() string {
	if strings.HasPrefix(v.Default, "(") {
		return ""
	}
	value, _, _ := strings.Cut(v.Default, " (")
	return value
}

// Default returns the value Load takes for the variable name when it is
// unset ("" for a name that is not in Vars), for the commands that reach a
// server started with the defaults.
func Default(name string) string {
	for _, v := range Vars {
		if v.Name == name {
			return v.Value()
		}
	}
	return ""
}

// Vars is the list of environment variables shopstream reads.
var Vars = []Var{
	{"DATABASE_URL", "postgres://localhost:5432/shopstream?sslmode=disable", "PostgreSQL connection string"},
	{"LISTEN_DATABASE_URL", "(DATABASE_URL)", "connection for LISTEN and the sequencer; must not go through a transaction-mode pooler"},
	{"LISTEN_ADDR", "127.0.0.1:3000", "HTTP listen address"},
	{"SHOPSTREAM_ENV", "production", "production or development (development: cookies not Secure)"},
	{"COOKIE_NAME", wire.SessionCookie, "session cookie name"},
	{"COOKIE_SECURE", "true (false in development)", "mark the session cookie Secure"},
	{"SESSION_IDLE_TIMEOUT", "30m", "a session ends after this long without activity (an open socket is activity)"},
	{"SESSION_LIFETIME", "12h", "absolute session lifetime"},
	{"ALLOWED_ORIGINS", "", "comma-separated extra origins, [scheme://]host[:port] (no scheme: https, and http in development or with COOKIE_SECURE=false); *.example.com matches one label; the service's own origin is always allowed"},
	{"TRUST_PROXY_HEADERS", "false", "take the client address (login throttling, logs) from X-Forwarded-For; only behind a proxy that sets it"},
	{"TRUSTED_PROXIES", "127.0.0.0/8,::1/128", "with TRUST_PROXY_HEADERS: the addresses or CIDRs of the proxies; X-Forwarded-For entries are read from the right while they come from these, and the first other address is the client's"},
	{"LOGIN_LIMIT_PAIR", "5/30s", "failed logins of one account from one client address: 5, then one per 30 s; then 429, even for the right password"},
	{"LOGIN_LIMIT_ADDRESS", "20/5s", "failed logins from one client address over all accounts"},
	{"LOGIN_LIMIT_ACCOUNT", "100/10s", "failed logins of one account from all addresses: the ceiling on distributed guessing"},
	{"LOGIN_HASH_CONCURRENCY", "2", "password checks (19 MiB of argon2id each) running at once"},
	{"LOGIN_HASH_QUEUE", "16", "logins waiting for a password check; beyond, 503 with Retry-After at once"},
	{"TABLES", "order=public.orders,product=public.products,customer=public.customers,shipment=public.shipments,transaction=public.transactions", "entity=table pairs to watch"},
	{"CAPTURE_REPLICA_WRITES", "false", "migrate sets the capture triggers to fire also for writes applied with session_replication_role = replica (logical replication, pglogical, Bucardo)"},
	{"SECRET_COLUMNS", "", "columns never sent, added to the built-in list (which always applies: " + DefaultSecretColumns + "); SECRET_COLUMNS_<ENTITY> (e.g. SECRET_COLUMNS_CUSTOMER) adds more for one table; names match case-insensitively"},
	{"ALLOWED_COLUMNS_<ENTITY>", "", "allow-list mode for one table (e.g. ALLOWED_COLUMNS_CUSTOMER=id,name,created_at): only these columns and the primary key leave; secret columns stay hidden even when listed"},
	{"IGNORED_COLUMNS", DefaultIgnoredColumns, "columns whose change alone emits no event; IGNORED_COLUMNS_<ENTITY> replaces it for one table"},
	{"EVENT_RETENTION", "24h", "how long the event log keeps events for resuming clients"},
	{"EVENT_PRUNE_INTERVAL", "1m", "how often the instance ordering the log rotates the capture tables: the oldest is truncated whole once all its changes are past retention (no row deletes)"},
	{"IDLE_POLL", "2s", "after 10 s without a change, how often the instance ordering the log looks for changes whose writer did not ring the doorbell (two-phase commit shops: the first such change after a quiet spell waits at most this; while changes flow the poll is at most 20 ms)"},
	{"TABLE_CHECK_INTERVAL", "30s", "how often serve checks that every configured table exists and has its capture triggers (/readyz warnings, metric, log)"},
	{"DEBUG_ADDR", "", "serve net/http/pprof on this separate host:port (operators only)"},
	{"MAX_EVENT_BYTES", "1048576", "an event whose data, previous and changed fields pass this many bytes is sent as a too_large marker carrying the row's key"},
	{"WS_SEND_QUEUE", "4096", "messages queued per socket before a slow client is closed with 1013"},
	{"WS_SEND_QUEUE_BYTES", "67108864", "bytes of messages queued per socket before a slow client is closed with 1013"},
	{"WS_MAX_MESSAGE_BYTES", "4096", "largest client message; bigger closes with 1009"},
	{"WS_WRITE_TIMEOUT", "10s", "a socket whose write takes longer is closed (checked every second)"},
	{"WS_PING_INTERVAL", "30s", "WebSocket ping period; a peer that does not answer is dropped"},
	{"WS_MAX_SOCKETS", "20000", "open sockets per instance; beyond, new sockets are closed with 1013"},
	{"WS_MAX_SOCKETS_PER_USER", "50", "open sockets per user per instance; beyond, new sockets are closed with 1013"},
	{"WS_FRAME_WRITER", "coalesced", "coalesced: sockets use small buffers and write each frame in one system call (internal/wsframe); library: net/http's 4 KiB buffers and the WebSocket library's own writes, a fallback should a library upgrade break the first"},
	{"PUBLIC_URL", "", "comma-separated URLs the service is reached at (https://shop.example.com); when set, a request whose Host is not theirs gets 421, and they are the service's own origins"},
	{"HTTP_READ_HEADER_TIMEOUT", "10s", "a connection that has not sent its request headers within this is closed"},
	{"HTTP_READ_TIMEOUT", "30s", "a request (body included) not read within this fails and its connection is closed; an upgraded socket has no such deadline"},
	{"HTTP_IDLE_TIMEOUT", "60s", "a keep-alive connection idle this long is closed"},
	{"HTTP_MAX_BODY_BYTES", "8192", "a larger request body gets 413 (login: 8 KiB)"},
	{"HTTP_MAX_CONNECTIONS", "0", "open TCP connections (sockets included); at the cap the longest-idle keep-alive connection is closed, else a new one gets 503 at once; 0: the descriptor limit less 256"},
	{"METRICS_ADDR", "", "serve /metrics on this separate address, and not on LISTEN_ADDR"},
	{"METRICS_DB_INTERVAL", "10s", "how often the database-derived gauges (changes waiting for a tick and the oldest one's age, NOTIFY queue usage) are read; a scrape runs no query"},
	{"LOG_FORMAT", "text", "text or json"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
}

// Load reads the configuration through getenv and validates it. Every
// default comes from Vars.
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		DatabaseURL:       p.connString("DATABASE_URL"),
		ListenDatabaseURL: p.connString("LISTEN_DATABASE_URL"),
		ListenAddr:        p.str("LISTEN_ADDR"),
		CookieName:        p.str("COOKIE_NAME"),
		LogFormat:         p.oneOf("LOG_FORMAT", "text", "json"),
		LogLevel:          p.oneOf("LOG_LEVEL", "debug", "info", "warn", "error"),
	}
	c.Development = p.oneOf("SHOPSTREAM_ENV", "production", "development") == "development"
	var secureSet bool
	if c.CookieSecure, secureSet = p.boolean("COOKIE_SECURE"); !secureSet && c.Development {
		c.CookieSecure = false // the table's "(false in development)"
	}
	c.SessionIdleTimeout = p.duration("SESSION_IDLE_TIMEOUT")
	c.SessionLifetime = p.duration("SESSION_LIFETIME")
	c.AllowedOrigins = splitList(p.str("ALLOWED_ORIGINS"))
	c.TrustProxy, _ = p.boolean("TRUST_PROXY_HEADERS")
	c.TrustedProxies = p.networks("TRUSTED_PROXIES")
	c.LoginPair = p.rateLimit("LOGIN_LIMIT_PAIR")
	c.LoginAddress = p.rateLimit("LOGIN_LIMIT_ADDRESS")
	c.LoginAccount = p.rateLimit("LOGIN_LIMIT_ACCOUNT")
	c.LoginHashes = p.integer("LOGIN_HASH_CONCURRENCY")
	c.LoginHashQueue = p.integer("LOGIN_HASH_QUEUE")
	c.Retention = p.duration("EVENT_RETENTION")
	c.PruneEvery = p.duration("EVENT_PRUNE_INTERVAL")
	c.TableCheck = p.duration("TABLE_CHECK_INTERVAL")
	c.IdlePoll = p.duration("IDLE_POLL")
	c.MaxEventBytes = p.integer("MAX_EVENT_BYTES")
	c.SendQueue = p.integer("WS_SEND_QUEUE")
	c.SendQueueBytes = p.integer("WS_SEND_QUEUE_BYTES")
	c.MaxMessageBytes = int64(p.integer("WS_MAX_MESSAGE_BYTES"))
	c.WriteTimeout = p.duration("WS_WRITE_TIMEOUT")
	c.PingInterval = p.duration("WS_PING_INTERVAL")
	c.MaxSockets = p.integer("WS_MAX_SOCKETS")
	c.MaxUserSockets = p.integer("WS_MAX_SOCKETS_PER_USER")
	c.FrameWriter = p.oneOf("WS_FRAME_WRITER", "coalesced", "library")
	c.Tables = p.tables()
	c.CaptureReplica, _ = p.boolean("CAPTURE_REPLICA_WRITES")
	c.PublicURLs = splitList(p.str("PUBLIC_URL"))
	c.ReadHeaderTimeout = p.duration("HTTP_READ_HEADER_TIMEOUT")
	c.ReadTimeout = p.duration("HTTP_READ_TIMEOUT")
	c.IdleTimeout = p.duration("HTTP_IDLE_TIMEOUT")
	c.MaxBodyBytes = int64(p.integer("HTTP_MAX_BODY_BYTES"))
	c.MaxConnections = p.integer("HTTP_MAX_CONNECTIONS")
	c.MetricsAddr = p.str("METRICS_ADDR")
	c.MetricsDBInterval = p.duration("METRICS_DB_INTERVAL")
	c.DebugAddr = p.str("DEBUG_ADDR")
	if c.ListenDatabaseURL == "" {
		c.ListenDatabaseURL = c.DatabaseURL // the table's "(DATABASE_URL)"
	}
	if len(p.errs) > 0 {
		return Config{}, errors.Join(p.errs...)
	}
	return c, c.Validate()
}

// Validate checks values that parse but make no sense. Each error names its
// variable and says what is wanted.
func (c Config) Validate() error {
	var errs []error
	want := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: want %s", name, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		want("LISTEN_ADDR", "host:port, got %q", c.ListenAddr)
	}
	if !validCookieName(c.CookieName) {
		want("COOKIE_NAME", "a cookie name (letters, digits and !#$%%&'*+-.^_`|~), got %q", c.CookieName)
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"SESSION_IDLE_TIMEOUT", c.SessionIdleTimeout}, {"SESSION_LIFETIME", c.SessionLifetime},
		{"EVENT_RETENTION", c.Retention}, {"EVENT_PRUNE_INTERVAL", c.PruneEvery}, {"IDLE_POLL", c.IdlePoll},
		{"TABLE_CHECK_INTERVAL", c.TableCheck}, {"WS_WRITE_TIMEOUT", c.WriteTimeout}, {"WS_PING_INTERVAL", c.PingInterval},
		{"HTTP_READ_HEADER_TIMEOUT", c.ReadHeaderTimeout}, {"HTTP_READ_TIMEOUT", c.ReadTimeout},
		{"HTTP_IDLE_TIMEOUT", c.IdleTimeout}, {"METRICS_DB_INTERVAL", c.MetricsDBInterval},
	} {
		if d.d <= 0 {
			want(d.name, "a positive duration, got %v", d.d)
		}
	}
	for _, l := range []struct {
		name string
		l    RateLimit
	}{{"LOGIN_LIMIT_PAIR", c.LoginPair}, {"LOGIN_LIMIT_ADDRESS", c.LoginAddress}, {"LOGIN_LIMIT_ACCOUNT", c.LoginAccount}} {
		if l.l.Burst < 1 || l.l.Every <= 0 {
			want(l.name, "at least 1 per a positive period, got %d/%v", l.l.Burst, l.l.Every)
		}
	}
	for _, n := range []struct {
		name     string
		n, least int64
	}{
		{"LOGIN_HASH_CONCURRENCY", int64(c.LoginHashes), 1}, {"LOGIN_HASH_QUEUE", int64(c.LoginHashQueue), 0},
		{"MAX_EVENT_BYTES", int64(c.MaxEventBytes), 1024}, {"WS_SEND_QUEUE", int64(c.SendQueue), 16},
		{"WS_MAX_MESSAGE_BYTES", c.MaxMessageBytes, 256}, {"WS_MAX_SOCKETS", int64(c.MaxSockets), 1},
		{"WS_MAX_SOCKETS_PER_USER", int64(c.MaxUserSockets), 1}, {"HTTP_MAX_BODY_BYTES", c.MaxBodyBytes, 1024},
	} {
		if n.n < n.least {
			want(n.name, "at least %d, got %d", n.least, n.n)
		}
	}
	if c.SendQueueBytes < c.MaxEventBytes {
		want("WS_SEND_QUEUE_BYTES", "at least MAX_EVENT_BYTES (%d), got %d", c.MaxEventBytes, c.SendQueueBytes)
	}
	if c.MaxConnections < 0 || (c.MaxConnections > 0 && c.MaxConnections < 4) {
		want("HTTP_MAX_CONNECTIONS", "0 (from the descriptor limit) or at least 4, got %d", c.MaxConnections)
	}
	for _, a := range []struct{ name, addr string }{{"METRICS_ADDR", c.MetricsAddr}, {"DEBUG_ADDR", c.DebugAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); a.addr != "" && err != nil {
			want(a.name, "host:port, got %q", a.addr)
		}
	}
	if _, err := origin.New(c.PublicURLs, c.AllowedOrigins, c.OriginOptions()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validCookieName is RFC 6265's cookie-name: an HTTP token.
func validCookieName(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r)
	})
}

// OriginOptions says how clients reach the service: over plain HTTP in
// development or with COOKIE_SECURE=false (then http origins are allowed),
// and under any loopback name in development.
func (c Config) OriginOptions() origin.Options {
	return origin.Options{PlainHTTP: c.Development || !c.CookieSecure, LoopbackAliases: c.Development}
}

// TableFor returns the watched table of an entity.
func (c Config) TableFor(entity string) (Table, bool) {
	for _, t := range c.Tables {
		if t.Entity == entity {
			return t, true
		}
	}
	return Table{}, false
}

type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) fail(name string, err error) {
	p.errs = append(p.errs, fmt.Errorf("%s: %w", name, err))
}

// raw is name's value from the environment or, when it is unset or blank,
// its default from Vars; set says which.
func (p *parser) raw(name string) (v string, set bool) {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v, true
	}
	for _, v := range Vars {
		if v.Name == name {
			return v.Value(), false
		}
	}
	p.fail(name, errors.New("not in config.Vars: add it there, with its default and help"))
	return "", false
}

// bad records that name's value v is not what is wanted.
func (p *parser) bad(name, v string, set bool, wanted string) {
	if !set {
		wanted += " (the default in config.Vars)"
	}
	p.fail(name, fmt.Errorf("want %s, got %q", wanted, v))
}

func (p *parser) str(name string) string {
	v, _ := p.raw(name)
	return v
}

// oneOf reads a value that must be one of choices.
func (p *parser) oneOf(name string, choices ...string) string {
	v, set := p.raw(name)
	if !slices.Contains(choices, v) {
		p.bad(name, v, set, strings.Join(choices[:len(choices)-1], ", ")+" or "+choices[len(choices)-1])
	}
	return v
}

// connString reads a PostgreSQL connection string, URL or key=value.
func (p *parser) connString(name string) string {
	v, set := p.raw(name)
	if v == "" {
		return ""
	}
	if _, err := pgconn.ParseConfig(v); err != nil {
		what := "a PostgreSQL connection string"
		if !set {
			what += " (the default in config.Vars)"
		}
		p.fail(name, fmt.Errorf("want %s: %w", what, err))
	}
	return v
}

func (p *parser) duration(name string) time.Duration {
	v, set := p.raw(name)
	d, err := time.ParseDuration(v)
	if err != nil {
		p.bad(name, v, set, "a duration such as 30s, 5m or 2h")
	}
	return d
}

func (p *parser) integer(name string) int {
	v, set := p.raw(name)
	n, err := strconv.Atoi(v)
	if err != nil {
		p.bad(name, v, set, "a whole number")
	}
	return n
}

func (p *parser) boolean(name string) (value, set bool) {
	v, set := p.raw(name)
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.bad(name, v, set, "true or false")
	}
	return b, set
}

// rateLimit parses "burst/period", e.g. "5/30s".
func (p *parser) rateLimit(name string) RateLimit {
	v, set := p.raw(name)
	b, e, ok := strings.Cut(v, "/")
	n, err := strconv.Atoi(strings.TrimSpace(b))
	d, derr := time.ParseDuration(strings.TrimSpace(e))
	if !ok || err != nil || derr != nil {
		p.bad(name, v, set, "burst/period such as 5/30s")
		return RateLimit{}
	}
	return RateLimit{Burst: n, Every: d}
}

// networks reads a comma-separated list of CIDRs or single addresses.
func (p *parser) networks(name string) []net.IPNet {
	list, set := p.raw(name)
	var out []net.IPNet
	for _, v := range splitList(list) {
		if !strings.Contains(v, "/") {
			if ip := net.ParseIP(v); ip != nil {
				bits := 128
				if ip.To4() != nil {
					ip, bits = ip.To4(), 32
				}
				out = append(out, net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
				continue
			}
		}
		_, n, err := net.ParseCIDR(v)
		if err != nil {
			p.bad(name, v, set, "addresses or CIDRs such as 10.0.0.7 or 10.0.0.0/8")
			continue
		}
		out = append(out, *n)
	}
	return out
}

// maxNameBytes is PostgreSQL's longest identifier (NAMEDATALEN - 1): a longer
// column name in a list could never match a column.
const maxNameBytes = 63

// columns reads a list of column names: lower case, without repeats.
func (p *parser) columns(name, v string) []string {
	out := lowerList(v)
	for _, c := range out {
		if len(c) > maxNameBytes {
			p.fail(name, fmt.Errorf("want column names of at most %d bytes, got %q", maxNameBytes, c))
		}
	}
	return out
}

func (p *parser) tables() []Table {
	secret := p.columns("SECRET_COLUMNS", DefaultSecretColumns+","+p.str("SECRET_COLUMNS"))
	ignored := p.columns("IGNORED_COLUMNS", p.str("IGNORED_COLUMNS"))
	list, set := p.raw("TABLES")
	var out []Table
	seen := map[string]bool{}
	for _, pair := range splitList(list) {
		entity, name, ok := strings.Cut(pair, "=")
		if !ok || !isEntity(entity) || name == "" || seen[entity] {
			p.bad("TABLES", pair, set, "entity=schema.table pairs, each entity once, one of "+strings.Join(Entities, ", "))
			continue
		}
		seen[entity] = true
		if !strings.Contains(name, ".") {
			name = "public." + name
		}
		out = append(out, p.table(entity, name, secret, ignored))
	}
	return out
}

// table reads the per-entity column lists of one table.
func (p *parser) table(entity, name string, secret, ignored []string) Table {
	t := Table{Entity: entity, Name: name, Secret: secret, Ignored: ignored}
	upper := strings.ToUpper(entity)
	if v := p.getenv("SECRET_COLUMNS_" + upper); v != "" {
		t.Secret = p.columns("SECRET_COLUMNS_"+upper, strings.Join(secret, ",")+","+v)
	}
	if v := p.getenv("ALLOWED_COLUMNS_" + upper); strings.TrimSpace(v) != "" {
		// A list that names nothing must not turn allow-list mode off.
		if t.Allowed = p.columns("ALLOWED_COLUMNS_"+upper, v); len(t.Allowed) == 0 {
			p.fail("ALLOWED_COLUMNS_"+upper, fmt.Errorf("want at least one column name, got %q", v))
		}
	}
	if v := p.getenv("IGNORED_COLUMNS_" + upper); v != "" {
		t.Ignored = p.columns("IGNORED_COLUMNS_"+upper, v)
	}
	return t
}

func isEntity(s string) bool {
	for _, e := range Entities {
		if e == s {
			return true
		}
	}
	return false
}

// lowerList is splitList in lower case, without repeats.
func lowerList(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range splitList(strings.ToLower(s)) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
