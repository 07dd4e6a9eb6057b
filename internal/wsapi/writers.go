package wsapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// stallAfter is how long a worker's turn on one socket may run before another
// worker takes its place: a socket whose write blocks (a peer that reads
// slowly, a full TCP window) or whose replay waits on the database keeps the
// goroutine it blocks, and the other sockets keep their workers.
const stallAfter = 10 * time.Millisecond

// writers is the write side of every socket: a few long-lived goroutines that
// take sockets with something to write from one ready queue, in the order
// they became ready, and write what each has queued. A socket is on the queue
// at most once (client.running), and only one worker writes it at a time, so
// its frames keep their order; a worker that has written a socket's queue
// puts the socket back at the end of the queue when more came meanwhile, so
// that a busy socket does not hold a worker while others wait.
//
// An idle socket costs the writers nothing, and an event costs no goroutine
// start: the hub queues a frame and wakes the socket, and a worker that is
// already running picks it up.
type writers struct {
	stall time.Duration
	obs   StageObserver

	mu      sync.Mutex
	cond    sync.Cond
	ready   []*client // FIFO: ready[head:] wait, in order
	head    int
	stopped bool
	running atomic.Int64 // workers alive, detached ones included
}

// StageObserver receives how long a step of the road from the database to a
// socket took (see metrics: shopstream_delivery_stage_seconds).
type StageObserver interface {
	Stage(stage string, d time.Duration)
}

// The stages the socket writers measure.
const (
	StageWait  = "wait"  // a socket became ready (frames queued, woken) until a worker took it
	StageWrite = "write" // a worker's turn: the socket's queued frames written
)

type noStages struct{}

func (noStages) Stage(string, time.Duration) {}

// newWriters starts n workers; they end once ctx has ended and the ready
// queue is empty.
func newWriters(ctx context.Context, n int, stall time.Duration, obs StageObserver) *writers {
	w := &writers{stall: stall, obs: obs}
	w.cond.L = &w.mu
	for range n {
		w.start()
	}
	context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.stopped = true
		w.mu.Unlock()
		w.cond.Broadcast()
	})
	return w
}

func (w *writers) start() {
	w.running.Add(1)
	go w.work()
}

// schedule puts c, which has just become ready, at the end of the queue.
// After the writers stopped (a shutdown whose deadline passed) c gets a
// goroutine of its own, so that its socket still ends.
func (w *writers) schedule(c *client) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		go func() {
			for c.turn() {
			}
		}()
		return
	}
	w.ready = append(w.ready, c)
	w.mu.Unlock()
	w.cond.Signal()
}

// take waits for a ready socket; nil once the writers stopped and nothing is
// left.
func (w *writers) take() *client {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.head == len(w.ready) {
		if w.stopped {
			return nil
		}
		w.cond.Wait()
	}
	c := w.ready[w.head]
	w.ready[w.head] = nil
	if w.head++; w.head == len(w.ready) {
		w.ready, w.head = w.ready[:0], 0
		if cap(w.ready) > maxIdleReady {
			w.ready = nil // let a burst's long queue go
		}
	}
	return c
}

// maxIdleReady is the longest ready queue kept for reuse once empty.
const maxIdleReady = 4096

// worker states.
const (
	workerIdle int32 = iota
	workerWriting
	workerDetached // its turn stalled and a new worker took its place: it ends after the turn
)

// work runs one worker. Each turn arms a timer; when the turn outlasts the
// stall bound the timer detaches the worker and starts another in its place.
// A timer that fires just as its turn ends may detach the worker's next turn
// instead: that only replaces the worker one turn early.
func (w *writers) work() {
	defer w.running.Add(-1)
	var state atomic.Int32
	stalled := time.AfterFunc(time.Hour, func() {
		if state.CompareAndSwap(workerWriting, workerDetached) {
			w.start()
		}
	})
	stalled.Stop()
	for {
		c := w.take()
		if c == nil {
			return
		}
		state.Store(workerWriting)
		stalled.Reset(w.stall)
		again := c.turn()
		stalled.Stop()
		detached := !state.CompareAndSwap(workerWriting, workerIdle)
		if again {
			w.schedule(c)
		}
		if detached {
			return
		}
	}
}
