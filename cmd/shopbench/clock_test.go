package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLatencyAtOrBelowZeroIsNeverMet(t *testing.T) {
	for _, c := range []struct {
		d, limit time.Duration
		want     string
	}{
		{time.Millisecond, 15 * time.Millisecond, "**met**"},
		{20 * time.Millisecond, 15 * time.Millisecond, "**not met**"},
		{-15 * time.Second, 15 * time.Millisecond, "**invalid**"},
		{0, 15 * time.Millisecond, "**invalid**"},
		{time.Millisecond, -time.Second, "**invalid**"}, // a baseline's stepped clock
	} {
		if got := latencyMet(c.d, c.limit); !strings.HasPrefix(got, c.want) {
			t.Errorf("latencyMet(%v, %v) = %q, want %q", c.d, c.limit, got, c.want)
		}
	}
}

// TestNowIsOneClockAcrossProcesses: a child process's now() falls between two
// readings of the parent's, as the writer process's commit times must.
func TestNowIsOneClockAcrossProcesses(t *testing.T) {
	if os.Getenv("SHOPBENCH_PRINT_NOW") == "1" {
		os.Stdout.WriteString(strconv.FormatInt(now(), 10))
		os.Exit(0)
	}
	before := now()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestNowIsOneClockAcrossProcesses$")
	cmd.Env = append(os.Environ(), "SHOPBENCH_PRINT_NOW=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	after := now()
	child, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("child printed %q: %v", out, err)
	}
	if child < before || child > after {
		t.Fatalf("child's now() %d is outside the parent's [%d, %d]", child, before, after)
	}
}
