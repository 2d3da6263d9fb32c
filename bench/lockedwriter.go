package main

import (
	"io"
	"sync"
)

// lockedWriter serializes writes from a child's stdout and stderr copiers
// with readers of the buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
