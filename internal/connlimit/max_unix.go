//go:build unix

package connlimit

import "syscall"

// DefaultMax is the cap when none is configured: the process's descriptor
// limit (which Go raises to its hard limit at start) less Reserve, for the
// database pool, the listeners and files. It returns the limit too.
func DefaultMax() (max int, nofile uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<24 {
		return fallbackMax, 0
	}
	return fromLimit(rl.Cur), rl.Cur
}
