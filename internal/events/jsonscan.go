package events

// scanJSON validates one JSON value (RFC 8259, with the whitespace around it)
// and returns how deeply its arrays and objects nest. It is encoding/json's
// Valid without its limit of 10,000 levels: a writer's jsonb column may nest
// deeper than that, and such a row must still become an event (marked too
// deep, see Limits), never be skipped as unreadable. It keeps no recursion
// and no stack but one byte per open level, so any input costs time linear
// in its length and memory linear in its depth.
//
// It assumes nothing of its input; FuzzScanJSON holds it to json.Valid on
// everything json.Valid can judge.
func scanJSON(b []byte) (depth int, ok bool) {
	var open []byte // '{' or '[' per level
	i := skipSpace(b, 0)
	for {
		// A value is expected at i.
		if i >= len(b) {
			return 0, false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			open = append(open, c)
			depth = max(depth, len(open))
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == closer(c) { // empty
				open = open[:len(open)-1]
				i++
				break
			}
			if c == '{' {
				if i = scanKey(b, i); i < 0 {
					return 0, false
				}
			}
			continue
		case c == '"':
			if i = scanString(b, i); i < 0 {
				return 0, false
			}
		case c == '-' || isDigit(c):
			if i = scanNumber(b, i); i < 0 {
				return 0, false
			}
		default:
			if i = scanLiteral(b, i); i < 0 {
				return 0, false
			}
		}
		// After a value: a separator, the end of containers, or the end.
		for {
			i = skipSpace(b, i)
			if len(open) == 0 {
				return depth, i == len(b)
			}
			if i >= len(b) {
				return 0, false
			}
			top := open[len(open)-1]
			if b[i] == closer(top) {
				open = open[:len(open)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipSpace(b, i+1)
			if top == '{' {
				if i = scanKey(b, i); i < 0 {
					return 0, false
				}
			}
			break
		}
	}
}

func closer(open byte) byte {
	if open == '{' {
		return '}'
	}
	return ']'
}

// scanKey reads `"key" :` at i and returns the index after the colon and the
// space after it, or -1.
func scanKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = scanString(b, i); i < 0 {
		return -1
	}
	if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipSpace(b, i+1)
}

// scanString reads the string starting at b[i] == '"' and returns the index
// after it, or -1. Bytes of 0x80 and above pass as they are, as in
// encoding/json (which replaces invalid UTF-8 when it decodes).
func scanString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

// scanNumber reads a JSON number at i and returns the index after it, or -1.
func scanNumber(b []byte, i int) int {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i == start {
		return -1
	}
	return i
}

func scanLiteral(b []byte, i int) int {
	for _, lit := range []string{"true", "false", "null"} {
		if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
			return i + len(lit)
		}
	}
	return -1
}

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
