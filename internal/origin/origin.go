// Package origin decides which browser origins may talk to shopstream and which
// Host names it answers to. The REST guard (internal/httpapi) and the socket's
// handshake (internal/wsapi) both ask one Policy, so the two cannot disagree.
//
// An origin is scheme://host[:port]. It is allowed when it is
//
//   - one of the public origins (PUBLIC_URL), compared whole: scheme, host, port;
//   - or, when no public origin is configured, the request's own Host with the
//     scheme https (http too when clients use plain HTTP: Options.PlainHTTP);
//   - or matched by a pattern of ALLOWED_ORIGINS: [scheme://]host[:port], where a
//     host may start with "*." to match exactly one label ("*.example.com"
//     matches "a.example.com", not "example.com" nor "a.b.example.com"); a
//     pattern without a scheme means https (http too with Options.PlainHTTP).
//
// With Options.LoopbackAliases (development) the loopback names localhost,
// 127.0.0.1 and [::1] stand for one another, so the printed http://127.0.0.1:3000 page may open a socket to
// localhost:3000 and back.
package origin

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Policy is the parsed configuration. The zero Policy allows only the request's
// own host over https.
type Policy struct {
	public   []site    // PUBLIC_URL origins
	patterns []pattern // ALLOWED_ORIGINS
	opts     Options
}

// Options are how clients reach the service.
type Options struct {
	// PlainHTTP: clients may use http:// (development, or COOKIE_SECURE=false
	// on an internal network), so http origins are the service's own too.
	PlainHTTP bool
	// LoopbackAliases: localhost, 127.0.0.1 and [::1] are one host (development).
	LoopbackAliases bool
}

// site is a parsed origin: lower-case scheme, host and port ("" for none).
type site struct{ scheme, host, port string }

type pattern struct {
	schemes []string // allowed schemes
	host    string   // lower case; a leading "*." matches one label
	port    string
}

// New parses the public URLs (PUBLIC_URL) and the allowed origin patterns
// (ALLOWED_ORIGINS).
func New(publicURLs, patterns []string, opts Options) (*Policy, error) {
	p := &Policy{opts: opts}
	var errs []error
	for _, s := range publicURLs {
		o, err := parseOrigin(s, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("PUBLIC_URL %q: %w", s, err))
			continue
		}
		p.public = append(p.public, o)
	}
	for _, s := range patterns {
		pt, err := p.parsePattern(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("ALLOWED_ORIGINS %q: %w", s, err))
			continue
		}
		p.patterns = append(p.patterns, pt)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// HostsListed reports whether public URLs are configured: then Host is checked.
func (p *Policy) HostsListed() bool { return len(p.public) > 0 }

// HostAllowed reports whether a request with this Host header may be served:
// always when no public URL is configured, else when Host is one of theirs
// (DNS rebinding: a page on the attacker's name that resolves to this server
// sends the attacker's name as Host).
func (p *Policy) HostAllowed(host string) bool {
	if len(p.public) == 0 {
		return true
	}
	h, port, ok := splitHost(host)
	if !ok {
		return false
	}
	for _, o := range p.public {
		if p.sameHost(o.host, h) && o.port == defaultPort(port, o.scheme) {
			return true
		}
	}
	return false
}

// Allowed reports whether a request to requestHost (its Host header) from the
// browser origin (its Origin header, non-empty) is allowed.
func (p *Policy) Allowed(origin, requestHost string) bool {
	o, err := parseOrigin(origin, false)
	if err != nil {
		return false
	}
	if len(p.public) > 0 {
		for _, pub := range p.public {
			if o.scheme == pub.scheme && o.port == pub.port && p.sameHost(o.host, pub.host) {
				return true
			}
		}
	} else if p.schemeOK(o.scheme) {
		if h, port, ok := splitHost(requestHost); ok && p.sameHost(o.host, h) && o.port == defaultPort(port, o.scheme) {
			return true
		}
	}
	for _, pt := range p.patterns {
		if pt.match(o) {
			return true
		}
	}
	return false
}

// schemeOK: https, and http when clients use plain HTTP.
func (p *Policy) schemeOK(scheme string) bool {
	return scheme == "https" || (p.opts.PlainHTTP && scheme == "http")
}

func (p *Policy) sameHost(a, b string) bool {
	return a == b || (p.opts.LoopbackAliases && isLoopback(a) && isLoopback(b))
}

func isLoopback(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "[::1]"
}

func (pt pattern) match(o site) bool {
	if o.port != defaultPort(pt.port, o.scheme) {
		return false
	}
	ok := false
	for _, s := range pt.schemes {
		ok = ok || s == o.scheme
	}
	if !ok {
		return false
	}
	if rest, wild := strings.CutPrefix(pt.host, "*."); wild {
		label, parent, found := strings.Cut(o.host, ".")
		return found && label != "" && parent == rest
	}
	return o.host == pt.host
}

func (p *Policy) parsePattern(s string) (pattern, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	schemes := []string{"https"}
	if p.opts.PlainHTTP {
		schemes = append(schemes, "http")
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if scheme != "http" && scheme != "https" {
			return pattern{}, fmt.Errorf("scheme must be http or https")
		}
		schemes, s = []string{scheme}, rest
	}
	if strings.ContainsAny(s, "/?#@") {
		return pattern{}, errors.New("want [scheme://]host[:port], no path")
	}
	wild := strings.HasPrefix(s, "*.")
	host, port, ok := splitHost(strings.TrimPrefix(s, "*."))
	if !ok || strings.Contains(host, "*") {
		return pattern{}, errors.New("want [scheme://]host[:port]; a wildcard only as a first label (*.example.com)")
	}
	if wild {
		host = "*." + host
	}
	return pattern{schemes: schemes, host: host, port: port}, nil
}

// parseOrigin parses scheme://host[:port]. A configured URL (config) may carry
// a path, which is ignored; a browser's Origin may not.
func parseOrigin(s string, config bool) (site, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return site{}, err
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return site{}, errors.New("scheme must be http or https")
	}
	if u.User != nil || u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" ||
		(!config && u.Path != "") || (config && u.Path != "" && u.Path != "/") {
		return site{}, errors.New("want scheme://host[:port]")
	}
	host, port, ok := splitHost(strings.ToLower(u.Host))
	if !ok || strings.Contains(host, "*") {
		return site{}, errors.New("bad host")
	}
	return site{scheme: scheme, host: host, port: defaultPort(port, scheme)}, nil
}

// splitHost splits host[:port] (lower-casing it); an IPv6 host keeps its
// brackets. It reports false for an empty host or a bad port.
func splitHost(hp string) (host, port string, ok bool) {
	hp = strings.ToLower(hp)
	host = hp
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", false
		}
		host, hp = hp[:end+1], hp[end+1:]
		if hp != "" && hp[0] != ':' {
			return "", "", false
		}
		port = strings.TrimPrefix(hp, ":")
		if hp != "" && port == "" {
			return "", "", false
		}
	} else if i := strings.LastIndexByte(hp, ':'); i >= 0 {
		host, port = hp[:i], hp[i+1:]
		if port == "" {
			return "", "", false
		}
	}
	if host == "" || (!strings.HasPrefix(host, "[") && strings.ContainsAny(host, ":/ \t")) {
		return "", "", false
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return "", "", false
		}
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip == nil && strings.HasPrefix(host, "[") {
		return "", "", false
	}
	return host, port, true
}

// defaultPort drops a port that is the scheme's default, so that
// https://a.example and https://a.example:443 compare equal.
func defaultPort(port, scheme string) string {
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		return ""
	}
	return port
}
