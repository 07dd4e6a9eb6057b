package events

import (
	"bytes"
	"encoding/json"
	"math/big"
	"testing"
)

func TestCanonicalNumber(t *testing.T) {
	same := [][]string{
		{"0", "-0", "0.0", "0e7", "-0.000e-3"},
		{"45", "45.0", "4.5e1", "450e-1", "4.5E+1", "0.045e3"},
		{"-0.0012", "-12e-4", "-1.2E-3"},
		{"36028797018963969", "3.6028797018963969e16"},
		{"12345678901234567.89", "1234567890123456789e-2"},
		{"1e400", "10e399", "0.1e401"},
		{"1e123456789012345678901234567890", "10e123456789012345678901234567889"},
	}
	for i, group := range same {
		want, err := canonicalNumber([]byte(group[0]))
		if err != nil {
			t.Fatalf("%s: %v", group[0], err)
		}
		for _, n := range group[1:] {
			got, err := canonicalNumber([]byte(n))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s → %s (%v), want %s like %s", n, got, err, want, group[0])
			}
		}
		for j, other := range same {
			if j == i {
				continue
			}
			o, _ := canonicalNumber([]byte(other[0]))
			if bytes.Equal(o, want) {
				t.Errorf("%s and %s render alike (%s)", group[0], other[0], o)
			}
		}
	}
	// The float64 neighbours are three different numbers.
	a, _ := canonicalNumber([]byte("36028797018963968"))
	b, _ := canonicalNumber([]byte("36028797018963969"))
	c, _ := canonicalNumber([]byte("36028797018963970"))
	if bytes.Equal(a, b) || bytes.Equal(b, c) || bytes.Equal(a, c) {
		t.Fatalf("neighbours above 2^53 compare equal: %s %s %s", a, b, c)
	}
	for _, bad := range []string{"", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1x", "NaN", "Infinity", "0x10", "1 ", " 1", "--1"} {
		if got, err := canonicalNumber([]byte(bad)); err == nil {
			t.Errorf("%q accepted as %s", bad, got)
		}
	}
}

// FuzzCanonicalNumber checks the two properties the filters rely on: a byte
// string is accepted exactly when it is a JSON number, and two numbers (of
// moderate exponent, so that big.Rat can check) render alike exactly when
// they are equal.
func FuzzCanonicalNumber(f *testing.F) {
	for _, s := range [][2]string{{"45", "4.5e1"}, {"0", "-0.0"}, {"36028797018963969", "36028797018963968"},
		{"-1.5e-3", "-0.0015"}, {"1e400", "1e401"}, {"01", "1"}, {"1.", "1"}, {"1000 ", "1000"}, {"9007199254740993", "9007199254740992.0"}} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ca, errA := canonicalNumber(a)
		cb, errB := canonicalNumber(b)
		for _, c := range []struct {
			in  []byte
			err error
		}{{a, errA}, {b, errB}} {
			isNum := json.Valid(c.in) && len(c.in) > 0 && (c.in[0] == '-' || isDigit(c.in[0])) &&
				len(bytes.TrimSpace(c.in)) == len(c.in) // canonical trims the space around a value first
			if isNum != (c.err == nil) {
				t.Fatalf("%q: JSON number %v, accepted %v", c.in, isNum, c.err == nil)
			}
		}
		if errA != nil || errB != nil || len(a) > 200 || len(b) > 200 || bigExponent(a) || bigExponent(b) {
			return
		}
		ra, ok1 := new(big.Rat).SetString(string(a))
		rb, ok2 := new(big.Rat).SetString(string(b))
		if !ok1 || !ok2 {
			t.Fatalf("big.Rat refused %q or %q", a, b)
		}
		if (ra.Cmp(rb) == 0) != bytes.Equal(ca, cb) {
			t.Fatalf("%q (%s) and %q (%s): equal %v, rendered alike %v", a, ca, b, cb, ra.Cmp(rb) == 0, bytes.Equal(ca, cb))
		}
	})
}

// bigExponent reports an exponent of more than three digits (big.Rat would
// build the power of ten).
func bigExponent(b []byte) bool {
	i := bytes.IndexAny(b, "eE")
	if i < 0 {
		return false
	}
	digits := bytes.TrimLeft(bytes.TrimLeft(b[i+1:], "+-"), "0")
	return len(digits) > 3
}

// A filter on a big id matches that id only, not its float64 neighbours.
func TestFilterComparesNumbersExactly(t *testing.T) {
	flt := mustFilter(t, `{"id":36028797018963969,"total":12345678901234567.89}`)
	sub := &Subscription{Filter: flt}
	for _, tt := range []struct {
		row  string
		want bool
	}{
		{`{"id":36028797018963969,"total":12345678901234567.89}`, true},
		{`{"id":3.6028797018963969e16,"total":12345678901234567.890}`, true},
		{`{"id":36028797018963968,"total":12345678901234567.89}`, false},
		{`{"id":36028797018963970,"total":12345678901234567.89}`, false},
		{`{"id":36028797018963969,"total":12345678901234567.88}`, false},
		{`{"id":"36028797018963969","total":12345678901234567.89}`, false},
	} {
		ev := &Event{Record: mustBuild(t, "created", "", tt.row)}
		if got := sub.Matches(ev); got != tt.want {
			t.Errorf("%s: match %v, want %v", tt.row, got, tt.want)
		}
	}
}
