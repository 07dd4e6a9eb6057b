package connlimit

import "testing"

func TestFromLimit(t *testing.T) {
	for nofile, want := range map[uint64]int{1024: 768, 65536: 65280, 300: 150, 1: 0} {
		if got := fromLimit(nofile); got != want {
			t.Errorf("fromLimit(%d) = %d, want %d", nofile, got, want)
		}
	}
}
