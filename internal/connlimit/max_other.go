//go:build !unix

package connlimit

// DefaultMax is the cap when none is configured; without a descriptor limit
// to read it is fallbackMax.
func DefaultMax() (max int, nofile uint64) { return fallbackMax, 0 }
