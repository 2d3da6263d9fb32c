package main

import (
	"fmt"
	"sync"
)

// cleanups are the stop functions of what a part started (servers, agents,
// a systemd user manager): run, last added first, when the part ends, as a
// test's t.Cleanup functions are.
type cleanups struct {
	mu sync.Mutex
	fs []func()
}

// add schedules f for when the part ends.
func (c *cleanups) add(f func()) {
	c.mu.Lock()
	c.fs = append(c.fs, f)
	c.mu.Unlock()
}

// run runs the functions added, last first, and forgets them.
func (c *cleanups) run() {
	for {
		c.mu.Lock()
		n := len(c.fs)
		if n == 0 {
			c.mu.Unlock()
			return
		}
		f := c.fs[n-1]
		c.fs = c.fs[:n-1]
		c.mu.Unlock()
		f()
	}
}

// skipError is a part's error when something it needs is missing here (a
// plugin, the agent binary, systemd): the report says "Not measured" and
// why, and it is no problem of the run.
type skipError struct{ reason string }

func (e skipError) Error() string { return e.reason }

// skipf returns a skipError.
func skipf(format string, args ...any) error {
	return skipError{fmt.Sprintf(format, args...)}
}
