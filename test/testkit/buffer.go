package testkit

import (
	"bytes"
	"sync"
)

// Buffer collects a process's output while it runs and the test reads it:
// a bytes.Buffer safe for one writer and concurrent readers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Tail returns the last n bytes written so far, marked when cut: enough of
// a process's log for an error message.
func (s *Buffer) Tail(n int) string {
	out := s.String()
	if len(out) > n {
		out = "..." + out[len(out)-n:]
	}
	return out
}
