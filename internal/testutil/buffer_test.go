package testutil

import (
	"strings"
	"sync"
	"testing"
)

// TestBufferConcurrentWritesAndReads: under -race, writers and a reader at
// once, and every write kept whole.
func TestBufferConcurrentWritesAndReads(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = b.Write([]byte("line\n"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if got := strings.Count(b.String(), "line\n"); got != 400 {
		t.Errorf("%d lines, want 400", got)
	}
}
