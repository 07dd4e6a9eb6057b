package origin

import (
	"strings"
	"testing"
)

func TestAllowed(t *testing.T) {
	type policy struct {
		public, patterns []string
		dev, plain       bool
	}
	prod := policy{patterns: []string{"admin.example.com", "*.shop.example", "http://legacy.example", "https://ports.example:8443"}}
	dev := policy{patterns: []string{"admin.example.com"}, dev: true}
	plain := policy{plain: true}
	pub := policy{public: []string{"https://shop.example.com", "https://alt.example.com:8443/"}, patterns: []string{"*.example.org"}}
	tests := []struct {
		p            policy
		origin, host string
		want         bool
	}{
		// Own host: https in production, http too in development.
		{prod, "https://api.example.net", "api.example.net", true},
		{prod, "https://API.example.net", "api.example.net:443", true},
		{prod, "http://api.example.net", "api.example.net", false},
		{prod, "https://api.example.net:8443", "api.example.net", false},
		{dev, "http://127.0.0.1:3000", "127.0.0.1:3000", true},
		{dev, "https://127.0.0.1:3000", "127.0.0.1:3000", true},
		// Development: localhost and 127.0.0.1 are one host; the port still counts.
		{dev, "http://127.0.0.1:3000", "localhost:3000", true},
		{dev, "http://localhost:3000", "127.0.0.1:3000", true},
		{dev, "http://[::1]:3000", "localhost:3000", true},
		{dev, "http://localhost:3001", "127.0.0.1:3000", false},
		{prod, "https://localhost:3000", "127.0.0.1:3000", false},
		// Plain HTTP in production (COOKIE_SECURE=false): http origins, no loopback aliases.
		{plain, "http://10.0.0.5:3000", "10.0.0.5:3000", true},
		{plain, "http://localhost:3000", "127.0.0.1:3000", false},
		// Other schemes and shapes are never allowed.
		{dev, "ws://127.0.0.1:3000", "127.0.0.1:3000", false},
		{dev, "file://127.0.0.1:3000", "127.0.0.1:3000", false},
		{dev, "null", "127.0.0.1:3000", false},
		{dev, "http://127.0.0.1:3000/path", "127.0.0.1:3000", false},
		{dev, "http://user@127.0.0.1:3000", "127.0.0.1:3000", false},
		{dev, "http://127.0.0.1:", "127.0.0.1:", false},
		{dev, "", "127.0.0.1:3000", false},
		// Patterns: exact hosts, one-label wildcards, schemes, ports.
		{prod, "https://admin.example.com", "api.example.net", true},
		{prod, "http://admin.example.com", "api.example.net", false},
		{dev, "http://admin.example.com", "127.0.0.1:3000", true},
		{prod, "https://admin.example.com:8443", "api.example.net", false},
		{prod, "https://evil-admin.example.com", "api.example.net", false},
		{prod, "https://a.shop.example", "api.example.net", true},
		{prod, "https://a.b.shop.example", "api.example.net", false},
		{prod, "https://shop.example", "api.example.net", false},
		{prod, "https://.shop.example", "api.example.net", false},
		{prod, "https://ashop.example", "api.example.net", false},
		{prod, "http://legacy.example", "api.example.net", true},
		{prod, "https://legacy.example", "api.example.net", false},
		{prod, "https://ports.example:8443", "api.example.net", true},
		{prod, "https://ports.example", "api.example.net", false},
		// Public URLs replace the own-host rule and are compared whole.
		{pub, "https://shop.example.com", "shop.example.com", true},
		{pub, "https://shop.example.com", "10.0.0.5:3000", true},
		{pub, "http://shop.example.com", "shop.example.com", false},
		{pub, "https://alt.example.com:8443", "alt.example.com:8443", true},
		{pub, "https://evil.example", "evil.example", false},
		{pub, "https://a.example.org", "shop.example.com", true},
	}
	for _, tc := range tests {
		p, err := New(tc.p.public, tc.p.patterns, Options{PlainHTTP: tc.p.dev || tc.p.plain, LoopbackAliases: tc.p.dev})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Allowed(tc.origin, tc.host); got != tc.want {
			t.Errorf("%+v: Allowed(%q, host %q) = %v, want %v", tc.p, tc.origin, tc.host, got, tc.want)
		}
	}
}

func TestHostAllowed(t *testing.T) {
	open, _ := New(nil, nil, Options{})
	if !open.HostAllowed("anything.example") || open.HostsListed() {
		t.Error("without PUBLIC_URL every Host is served")
	}
	p, err := New([]string{"https://shop.example.com", "http://localhost:3000"}, nil, Options{PlainHTTP: true, LoopbackAliases: true})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"shop.example.com": true, "SHOP.example.com:443": true, "shop.example.com:3000": false,
		"localhost:3000": true, "127.0.0.1:3000": true, "localhost:3001": false,
		"evil.example": false, "": false, "shop.example.com.evil.example": false, "[::1]:3000": true, "[::1": false,
	} {
		if got := p.HostAllowed(host); got != want {
			t.Errorf("HostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestNewRefusesBadConfiguration(t *testing.T) {
	for _, tc := range []struct{ public, pattern string }{
		{"shop.example.com", ""},           // no scheme
		{"ftp://shop.example.com", ""},     // not http(s)
		{"https://shop.example.com/x", ""}, // a path
		{"", "a.*.example.com"},            // wildcard not first
		{"", "*example.com"},               // wildcard not a label
		{"", "ws://a.example.com"},         // scheme
		{"", "a.example.com/path"},         // path
		{"", "a.example.com:port"},         // port
	} {
		var public, patterns []string
		if tc.public != "" {
			public = []string{tc.public}
		}
		if tc.pattern != "" {
			patterns = []string{tc.pattern}
		}
		if _, err := New(public, patterns, Options{}); err == nil {
			t.Errorf("New(%q, %q): want an error", tc.public, tc.pattern)
		}
	}
}

// FuzzAllowed feeds untrusted Origin and Host headers to the policy: it must
// not panic, must allow nothing that is not http(s), and its Host check must
// agree with a plain comparison.
func FuzzAllowed(f *testing.F) {
	for _, s := range []string{"https://a.example.com", "http://127.0.0.1:3000", "null", "https://[::1]:1", "https://a.b.example.com", "http://x:99999999999999999999", "https://%zz"} {
		f.Add(s, "a.example.com")
	}
	p, err := New([]string{"https://shop.example.com"}, []string{"*.example.com", "http://plain.example"}, Options{PlainHTTP: true, LoopbackAliases: true})
	if err != nil {
		f.Fatal(err)
	}
	q, _ := New(nil, []string{"*.example.com"}, Options{})
	f.Fuzz(func(t *testing.T, origin, host string) {
		for _, pol := range []*Policy{p, q} {
			if pol.Allowed(origin, host) {
				lo := strings.ToLower(origin)
				if !strings.HasPrefix(lo, "https://") && !strings.HasPrefix(lo, "http://") {
					t.Fatalf("allowed a non-http(s) origin %q", origin)
				}
				if strings.Count(lo, ".example.com") == 1 && strings.HasSuffix(lo, ".example.com") {
					label := strings.TrimSuffix(lo[strings.Index(lo, "://")+3:], ".example.com")
					if strings.Contains(label, ".") && pol == q {
						t.Fatalf("wildcard matched more than one label: %q", origin)
					}
				}
			}
		}
		if p.HostAllowed(host) {
			h := strings.ToLower(host)
			if h != "shop.example.com" && h != "shop.example.com:443" {
				t.Fatalf("HostAllowed(%q)", host)
			}
		}
	})
}
