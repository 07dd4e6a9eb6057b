package main

// The writers run in a process of their own (`shopbench write`), apart from the
// reading clients: in one Go process the readers of a fast server starve the
// writers' goroutines, and the offered rate is no longer what was asked. The
// parent sends one line per level and reads back each commit with its time on
// CLOCK_MONOTONIC (now: both processes run on one machine, so one clock).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// writerProc is the parent's end of the writer process.
type writerProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startWriterProc(dbURL string) (*writerProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "write")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the writer process: %w", err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	wp := &writerProc{cmd: cmd, in: in, out: sc}
	if !sc.Scan() || sc.Text() != "ready" {
		wp.close()
		return nil, fmt.Errorf("the writer process did not start: %v %q", sc.Err(), sc.Text())
	}
	return wp, nil
}

func (wp *writerProc) close() {
	_ = wp.in.Close()
	done := make(chan struct{})
	go func() { _ = wp.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = wp.cmd.Process.Kill()
		<-done
	}
}

// level runs one level in the writer process and records its commits in w.
func (wp *writerProc) level(w *writers, rate int, d time.Duration, maxEvents uint64) error {
	if _, err := fmt.Fprintf(wp.in, "%d %d %d %d\n", w.base, rate, int64(d), maxEvents); err != nil {
		return fmt.Errorf("asking the writer process for a level: %w", err)
	}
	for wp.out.Scan() {
		f := strings.Fields(wp.out.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "c": // c <seq> <commit, now() ns> <rtt ns>
			if len(f) != 4 {
				return fmt.Errorf("writer process: bad line %q", wp.out.Text())
			}
			seq, _ := strconv.ParseUint(f[1], 10, 64)
			at, _ := strconv.ParseInt(f[2], 10, 64)
			rtt, _ := strconv.ParseInt(f[3], 10, 64)
			w.record(seq, at, time.Duration(rtt))
		case "e": // e <count> <last error>
			n, _ := strconv.ParseInt(f[1], 10, 64)
			w.errs.Add(n)
			if len(f) > 2 {
				w.lastErr.Store(strings.Join(f[2:], " "))
			}
		case "done": // done <last seq handed out>
			last, _ := strconv.ParseUint(f[1], 10, 64)
			w.seq.Store(last)
			return nil
		}
	}
	if err := wp.out.Err(); err != nil {
		return fmt.Errorf("reading the writer process: %w", err)
	}
	return errors.New("the writer process ended during a level")
}

// runWriterProc is `shopbench write`: 8 writer connections that run one level
// per line read from stdin ("<base> <rate> <duration ns> <max events>").
func runWriterProc() error {
	ctx := context.Background()
	w, err := newLocalWriters(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return fmt.Errorf("writer process: %w", err)
	}
	defer w.close()
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	fmt.Fprintln(out, "ready")
	if err := out.Flush(); err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var base uint64
		var rate int
		var d int64
		var maxEvents uint64
		if _, err := fmt.Sscan(in.Text(), &base, &rate, &d, &maxEvents); err != nil {
			return fmt.Errorf("writer process: bad level %q: %w", in.Text(), err)
		}
		w.seq.Store(base - 1)
		w.startLevel()
		w.run(ctx, rate, time.Duration(d), maxEvents)
		w.mu.Lock()
		rtts := w.rtts
		i := 0
		for k, at := range w.commits {
			if at == 0 {
				continue
			}
			var rtt time.Duration
			if i < len(rtts) {
				rtt = rtts[i] // rtts are in commit order, not by seq: the summary needs only the set
			}
			i++
			fmt.Fprintf(out, "c %d %d %d\n", w.base+uint64(k), at, int64(rtt))
		}
		w.mu.Unlock()
		if n := w.errs.Load(); n > 0 {
			last, _ := w.lastErr.Load().(string)
			fmt.Fprintf(out, "e %d %s\n", n, strings.ReplaceAll(last, "\n", " "))
		}
		fmt.Fprintf(out, "done %d\n", w.seq.Load())
		if err := out.Flush(); err != nil {
			return err
		}
	}
	return in.Err()
}
