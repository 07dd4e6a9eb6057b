package config

import (
	"reflect"
	"strings"
	"testing"
)

func envOf(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

// concrete is the name a test sets for v: ALLOWED_COLUMNS_<ENTITY> becomes
// ALLOWED_COLUMNS_ORDER.
func concrete(v Var) string { return strings.Replace(v.Name, "<ENTITY>", "ORDER", 1) }

// TestDefaultsComeFromVars: every Var's default parses, and setting a
// variable to its own default changes nothing, so Load has no other default.
func TestDefaultsComeFromVars(t *testing.T) {
	base, err := Load(envOf(nil))
	if err != nil {
		t.Fatalf("the defaults in Vars do not load: %v", err)
	}
	for _, v := range Vars {
		if v.Value() == "" {
			continue
		}
		c, err := Load(envOf(map[string]string{concrete(v): v.Value()}))
		if err != nil {
			t.Errorf("%s=%s (its default): %v", v.Name, v.Value(), err)
			continue
		}
		if !reflect.DeepEqual(c, base) {
			t.Errorf("%s=%s (its default) loads another configuration than leaving it unset", v.Name, v.Value())
		}
	}
	// The two defaults that are rules, not values.
	if base.ListenDatabaseURL != base.DatabaseURL || !base.CookieSecure {
		t.Errorf("LISTEN_DATABASE_URL %q (want DATABASE_URL's), COOKIE_SECURE %v (want true)", base.ListenDatabaseURL, base.CookieSecure)
	}
	dev, err := Load(envOf(map[string]string{"SHOPSTREAM_ENV": "development"}))
	if err != nil || dev.CookieSecure {
		t.Errorf("development: COOKIE_SECURE %v, err %v; want false", dev.CookieSecure, err)
	}
	dev, err = Load(envOf(map[string]string{"SHOPSTREAM_ENV": "development", "COOKIE_SECURE": "true"}))
	if err != nil || !dev.CookieSecure {
		t.Errorf("development with COOKIE_SECURE=true: %v, err %v; want true", dev.CookieSecure, err)
	}
}

// TestValue: Value is Default less its note.
func TestValue(t *testing.T) {
	for def, want := range map[string]string{"true (false in development)": "true", "(DATABASE_URL)": "", "5/30s": "5/30s", "": ""} {
		if got := (Var{Default: def}).Value(); got != want {
			t.Errorf("Value of %q = %q, want %q", def, got, want)
		}
	}
}

// documented says whether name is in Vars, itself or as a per-entity form
// (ALLOWED_COLUMNS_<ENTITY>, or SECRET_COLUMNS_<ENTITY> in SECRET_COLUMNS's help).
func documented(name string) bool {
	for _, v := range Vars {
		if v.Name == name {
			return true
		}
	}
	for _, e := range Entities {
		base, ok := strings.CutSuffix(name, "_"+strings.ToUpper(e))
		if !ok {
			continue
		}
		for _, v := range Vars {
			if v.Name == base+"_<ENTITY>" || (v.Name == base && strings.Contains(v.Help, base+"_<ENTITY>")) {
				return true
			}
		}
	}
	return false
}

// TestLoadReadsOnlyVars: every name Load asks for is in Vars (and so in
// `shopstream help` and the README).
func TestLoadReadsOnlyVars(t *testing.T) {
	read := map[string]bool{}
	if _, err := Load(func(k string) string { read[k] = true; return "" }); err != nil {
		t.Fatal(err)
	}
	for name := range read {
		if !documented(name) {
			t.Errorf("Load reads %s, which is not in Vars", name)
		}
	}
	for _, v := range Vars {
		if !read[concrete(v)] {
			t.Errorf("%s is in Vars but Load never reads it", v.Name)
		}
	}
	p := parser{getenv: envOf(nil)}
	p.str("NOT_A_VARIABLE")
	if len(p.errs) != 1 || p.errs[0].Error() != "NOT_A_VARIABLE: not in config.Vars: add it there, with its default and help" {
		t.Errorf("reading a name not in Vars: %v", p.errs)
	}
}

// TestBadDefaultIsNamed: a default in Vars that does not parse is reported as
// such. Not parallel: it swaps Vars.
func TestBadDefaultIsNamed(t *testing.T) {
	saved := Vars
	t.Cleanup(func() { Vars = saved })
	Vars = append([]Var(nil), saved...)
	for i := range Vars {
		if Vars[i].Name == "WS_SEND_QUEUE" {
			Vars[i].Default = "many"
		}
	}
	_, err := Load(envOf(nil))
	if want := `WS_SEND_QUEUE: want a whole number (the default in config.Vars), got "many"`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

var long = strings.Repeat("x", 64)

// badValues has, for each variable, a bad value and the exact error.
var badValues = map[string][]struct{ value, want string }{
	"DATABASE_URL": {{"postgres://localhost:port/db", "DATABASE_URL: want a PostgreSQL connection string: cannot parse `postgres://localhost:port/db`: invalid port"}},
	// The password is not in the error.
	"LISTEN_DATABASE_URL":      {{"postgres://u:hunter2@db:port/x", "LISTEN_DATABASE_URL: want a PostgreSQL connection string: cannot parse `postgres://u:xxxxx@db:port/x`: invalid port"}, {"host=a port=x", "LISTEN_DATABASE_URL: want a PostgreSQL connection string: cannot parse `host=a port=x`: invalid port"}},
	"LISTEN_ADDR":              {{"3000", `LISTEN_ADDR: want host:port, got "3000"`}},
	"SHOPSTREAM_ENV":           {{"staging", `SHOPSTREAM_ENV: want production or development, got "staging"`}},
	"COOKIE_NAME":              {{"my session", "COOKIE_NAME: want a cookie name (letters, digits and !#$%&'*+-.^_`|~), got \"my session\""}, {"a;b", "COOKIE_NAME: want a cookie name (letters, digits and !#$%&'*+-.^_`|~), got \"a;b\""}},
	"COOKIE_SECURE":            {{"yes", `COOKIE_SECURE: want true or false, got "yes"`}},
	"SESSION_IDLE_TIMEOUT":     {{"30", `SESSION_IDLE_TIMEOUT: want a duration such as 30s, 5m or 2h, got "30"`}},
	"SESSION_LIFETIME":         {{"0s", `SESSION_LIFETIME: want a positive duration, got 0s`}},
	"ALLOWED_ORIGINS":          {{"https://a.example/path", `ALLOWED_ORIGINS "https://a.example/path": want [scheme://]host[:port], no path`}},
	"TRUST_PROXY_HEADERS":      {{"maybe", `TRUST_PROXY_HEADERS: want true or false, got "maybe"`}},
	"TRUSTED_PROXIES":          {{"10.0.0.1,proxy", `TRUSTED_PROXIES: want addresses or CIDRs such as 10.0.0.7 or 10.0.0.0/8, got "proxy"`}},
	"LOGIN_LIMIT_PAIR":         {{"5", `LOGIN_LIMIT_PAIR: want burst/period such as 5/30s, got "5"`}},
	"LOGIN_LIMIT_ADDRESS":      {{"x/5s", `LOGIN_LIMIT_ADDRESS: want burst/period such as 5/30s, got "x/5s"`}},
	"LOGIN_LIMIT_ACCOUNT":      {{"0/10s", `LOGIN_LIMIT_ACCOUNT: want at least 1 per a positive period, got 0/10s`}},
	"LOGIN_HASH_CONCURRENCY":   {{"0", `LOGIN_HASH_CONCURRENCY: want at least 1, got 0`}},
	"LOGIN_HASH_QUEUE":         {{"-1", `LOGIN_HASH_QUEUE: want at least 0, got -1`}},
	"TABLES":                   {{"order=public.orders,orders", `TABLES: want entity=schema.table pairs, each entity once, one of order, product, customer, shipment, transaction, got "orders"`}, {"order=a,order=b", `TABLES: want entity=schema.table pairs, each entity once, one of order, product, customer, shipment, transaction, got "order=b"`}},
	"CAPTURE_REPLICA_WRITES":   {{"2", `CAPTURE_REPLICA_WRITES: want true or false, got "2"`}},
	"SECRET_COLUMNS":           {{"pin," + long, `SECRET_COLUMNS: want column names of at most 63 bytes, got "` + long + `"`}},
	"ALLOWED_COLUMNS_<ENTITY>": {{" , ", `ALLOWED_COLUMNS_ORDER: want at least one column name, got " , "`}},
	"IGNORED_COLUMNS":          {{long, `IGNORED_COLUMNS: want column names of at most 63 bytes, got "` + long + `"`}},
	"EVENT_RETENTION":          {{"1d", `EVENT_RETENTION: want a duration such as 30s, 5m or 2h, got "1d"`}},
	"EVENT_PRUNE_INTERVAL":     {{"0s", `EVENT_PRUNE_INTERVAL: want a positive duration, got 0s`}},
	"IDLE_POLL":                {{"-2s", `IDLE_POLL: want a positive duration, got -2s`}},
	"TABLE_CHECK_INTERVAL":     {{"often", `TABLE_CHECK_INTERVAL: want a duration such as 30s, 5m or 2h, got "often"`}},
	"DEBUG_ADDR":               {{"localhost", `DEBUG_ADDR: want host:port, got "localhost"`}},
	"MAX_EVENT_BYTES":          {{"100", `MAX_EVENT_BYTES: want at least 1024, got 100`}, {"1MB", `MAX_EVENT_BYTES: want a whole number, got "1MB"`}},
	"WS_SEND_QUEUE":            {{"8", `WS_SEND_QUEUE: want at least 16, got 8`}},
	"WS_SEND_QUEUE_BYTES":      {{"1000", `WS_SEND_QUEUE_BYTES: want at least MAX_EVENT_BYTES (1048576), got 1000`}},
	"WS_MAX_MESSAGE_BYTES":     {{"100", `WS_MAX_MESSAGE_BYTES: want at least 256, got 100`}},
	"WS_WRITE_TIMEOUT":         {{"0s", `WS_WRITE_TIMEOUT: want a positive duration, got 0s`}},
	"WS_PING_INTERVAL":         {{"10", `WS_PING_INTERVAL: want a duration such as 30s, 5m or 2h, got "10"`}},
	"WS_MAX_SOCKETS":           {{"0", `WS_MAX_SOCKETS: want at least 1, got 0`}},
	"WS_MAX_SOCKETS_PER_USER":  {{"0", `WS_MAX_SOCKETS_PER_USER: want at least 1, got 0`}},
	"WS_FRAME_WRITER":          {{"plain", `WS_FRAME_WRITER: want coalesced or library, got "plain"`}},
	"PUBLIC_URL":               {{"shop.example.com", `PUBLIC_URL "shop.example.com": scheme must be http or https`}},
	"HTTP_READ_HEADER_TIMEOUT": {{"0s", `HTTP_READ_HEADER_TIMEOUT: want a positive duration, got 0s`}},
	"HTTP_READ_TIMEOUT":        {{"-1s", `HTTP_READ_TIMEOUT: want a positive duration, got -1s`}},
	"HTTP_IDLE_TIMEOUT":        {{"1 minute", `HTTP_IDLE_TIMEOUT: want a duration such as 30s, 5m or 2h, got "1 minute"`}},
	"HTTP_MAX_BODY_BYTES":      {{"512", `HTTP_MAX_BODY_BYTES: want at least 1024, got 512`}},
	"HTTP_MAX_CONNECTIONS":     {{"2", `HTTP_MAX_CONNECTIONS: want 0 (from the descriptor limit) or at least 4, got 2`}},
	"METRICS_ADDR":             {{"9090", `METRICS_ADDR: want host:port, got "9090"`}},
	"METRICS_DB_INTERVAL":      {{"0s", `METRICS_DB_INTERVAL: want a positive duration, got 0s`}},
	"LOG_FORMAT":               {{"xml", `LOG_FORMAT: want text or json, got "xml"`}},
	"LOG_LEVEL":                {{"verbose", `LOG_LEVEL: want debug, info, warn or error, got "verbose"`}},
}

// TestBadValues: for every variable in Vars, a bad value fails Load with an
// error that names the variable and says what is wanted. A new variable
// without a case here fails.
func TestBadValues(t *testing.T) {
	for _, v := range Vars {
		cases, ok := badValues[v.Name]
		if !ok {
			t.Errorf("%s: no bad-value case in badValues", v.Name)
			continue
		}
		for _, tc := range cases {
			_, err := Load(envOf(map[string]string{concrete(v): tc.value}))
			if err == nil || err.Error() != tc.want {
				t.Errorf("%s=%q:\n got %v\nwant %s", concrete(v), tc.value, err, tc.want)
			}
		}
	}
	for name := range badValues {
		if _, ok := lookupVar(name); !ok {
			t.Errorf("badValues has %s, which is not in Vars", name)
		}
	}
}

func lookupVar(name string) (Var, bool) {
	for _, v := range Vars {
		if v.Name == name {
			return v, true
		}
	}
	return Var{}, false
}

// Default gives what Load takes for an unset variable, notes stripped.
func TestDefault(t *testing.T) {
	c, err := Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := Default("LISTEN_ADDR"); got != c.ListenAddr {
		t.Errorf("Default(LISTEN_ADDR) = %q, Load took %q", got, c.ListenAddr)
	}
	if got := Default("COOKIE_NAME"); got != c.CookieName || got != "shopstream_session" {
		t.Errorf("Default(COOKIE_NAME) = %q, Load took %q", got, c.CookieName)
	}
	if got := Default("COOKIE_SECURE"); got != "true" {
		t.Errorf("Default(COOKIE_SECURE) = %q, want the value without its note", got)
	}
	if got := Default("NO_SUCH_VARIABLE"); got != "" {
		t.Errorf("Default(NO_SUCH_VARIABLE) = %q", got)
	}
}
