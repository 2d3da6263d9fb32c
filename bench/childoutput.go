package main

import (
	"bytes"
	"sync"
)

// childOutput collects a child process's stdout and stderr: the two copier
// goroutines write it while error paths read it, so both go through mu.
type childOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *childOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// Tail returns the last n bytes written so far, marked when cut.
func (o *childOutput) Tail(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.buf.String()
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
