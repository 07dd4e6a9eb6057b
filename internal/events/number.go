package events

import (
	"errors"
	"math/big"
	"strconv"
)

// canonicalNumber renders a JSON number so that two numbers are equal exactly
// when their renderings are equal as bytes, without going through float64
// (which makes 36028797018963969 and 36028797018963968 one number) and without
// big-number arithmetic on the value (a filter's 1e999999999 would allocate a
// billion digits): the significant digits, stripped of leading and trailing
// zeros, and the power of ten they are scaled by.
//
//	0, -0, 0.0, 0e7          → "0"
//	45, 45.0, 4.5e1, 450e-1  → "45e0"
//	-0.0012                  → "-12e-4"
//
// It assumes nothing of its input: anything that is not a JSON number is an
// error. The exponent is exact for any length (big.Int beyond 18 digits).
func canonicalNumber(b []byte) ([]byte, error) {
	i, neg := 0, false
	if i < len(b) && b[i] == '-' {
		neg, i = true, i+1
	}
	intStart := i
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	intDigits := b[intStart:i]
	if len(intDigits) == 0 || (len(intDigits) > 1 && intDigits[0] == '0') {
		return nil, errNotNumber
	}
	var fracDigits []byte
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if fracDigits = b[start:i]; len(fracDigits) == 0 {
			return nil, errNotNumber
		}
	}
	expNeg, expDigits := false, []byte(nil)
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			expNeg, i = b[i] == '-', i+1
		}
		start := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if expDigits = b[start:i]; len(expDigits) == 0 {
			return nil, errNotNumber
		}
	}
	if i != len(b) {
		return nil, errNotNumber
	}
	// The significant digits of int and frac together, as one run.
	digits := make([]byte, 0, len(intDigits)+len(fracDigits)+24)
	digits = append(digits, intDigits...)
	digits = append(digits, fracDigits...)
	lead := 0
	for lead < len(digits) && digits[lead] == '0' {
		lead++
	}
	digits = digits[lead:]
	if len(digits) == 0 {
		return []byte("0"), nil
	}
	trail := 0
	for digits[len(digits)-1-trail] == '0' {
		trail++
	}
	digits = digits[:len(digits)-trail]
	// value = digits × 10^(exp − len(frac) + trail)
	shift := int64(trail) - int64(len(fracDigits))
	out := make([]byte, 0, len(digits)+len(expDigits)+24)
	if neg {
		out = append(out, '-')
	}
	out = append(out, digits...)
	out = append(out, 'e')
	trimmed := expDigits
	for len(trimmed) > 1 && trimmed[0] == '0' {
		trimmed = trimmed[1:]
	}
	if len(trimmed) <= 18 {
		e := int64(0)
		if len(trimmed) > 0 {
			e, _ = strconv.ParseInt(string(trimmed), 10, 64)
		}
		if expNeg {
			e = -e
		}
		return strconv.AppendInt(out, e+shift, 10), nil
	}
	e, _ := new(big.Int).SetString(string(trimmed), 10)
	if expNeg {
		e.Neg(e)
	}
	e.Add(e, big.NewInt(shift))
	return e.Append(out, 10), nil
}

var errNotNumber = errors.New("not a JSON number")

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
