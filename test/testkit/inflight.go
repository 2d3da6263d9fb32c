package testkit

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// InFlightServer is an HTTP server whose every request takes a fixed time,
// counting how many it serves at once: tests of a cap on concurrent checks
// read the most it saw.
type InFlightServer struct {
	URL string

	mu                sync.Mutex
	inFlight, most, n int
}

// StartInFlightServer starts an InFlightServer whose requests each take
// hold; it is closed at the test's end.
func StartInFlightServer(t testing.TB, hold time.Duration) *InFlightServer {
	t.Helper()
	s := &InFlightServer{}
	hs := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		s.mu.Lock()
		s.inFlight++
		s.n++
		s.most = max(s.most, s.inFlight)
		s.mu.Unlock()
		time.Sleep(hold)
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// Counts returns the most requests served at once and how many arrived.
func (s *InFlightServer) Counts() (most, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.most, s.n
}
