package dataplane

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// Caller calls without pause in the background, as a client under load
// does while a test changes the mesh, and keeps which pod served each
// call: in all, and among the last calls (a window).
type Caller struct {
	window int

	mu       sync.Mutex
	served   map[string]int
	recent   []string
	failures []error
	calls    atomic.Int64

	stopping atomic.Bool
	stopped  chan struct{}
}

// StartCaller calls call until Stop (which the end of the test runs too),
// keeping the pods of the last window calls. call returns the pod that
// served it.
func StartCaller(t testing.TB, window int, call func() (string, error)) *Caller {
	c := &Caller{window: window, served: map[string]int{}, stopped: make(chan struct{})}
	go func() {
		defer close(c.stopped)
		for !c.stopping.Load() {
			pod, err := call()
			c.calls.Add(1)
			c.mu.Lock()
			if err != nil {
				c.failures = append(c.failures, err)
			} else {
				c.served[pod]++
				c.recent = append(c.recent, pod)
				if len(c.recent) > c.window {
					c.recent = c.recent[1:]
				}
			}
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.Stop)
	return c
}

// Stop stops calling and waits for the call under way.
func (c *Caller) Stop() {
	c.stopping.Store(true)
	<-c.stopped
}

// MostTo returns a check for Eventually: at least min of the last window
// calls went to pod (and the window is full).
func (c *Caller) MostTo(pod string, minimum int) func() error {
	return func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		n := 0
		for _, p := range c.recent {
			if p == pod {
				n++
			}
		}
		if len(c.recent) < c.window || n < minimum {
			return fmt.Errorf("%d of the last %d calls went to %s", n, len(c.recent), pod)
		}
		return nil
	}
}

// Forget empties the window, so that MostTo judges only later calls.
func (c *Caller) Forget() {
	c.mu.Lock()
	c.recent = c.recent[:0]
	c.mu.Unlock()
}

// Served returns how many calls each pod served so far.
func (c *Caller) Served() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.served))
	for k, v := range c.served {
		out[k] = v
	}
	return out
}

// Calls returns the number of calls made so far.
func (c *Caller) Calls() int64 { return c.calls.Load() }

// ReportFailures fails the test with the failed calls (the first five and
// how many more), saying what was going on.
func (c *Caller) ReportFailures(t testing.TB, during string) int {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, err := range c.failures {
		if i == 5 {
			t.Errorf("... and %d more", len(c.failures)-5)
			break
		}
		t.Errorf("a call failed %s: %v", during, err)
	}
	return len(c.failures)
}
