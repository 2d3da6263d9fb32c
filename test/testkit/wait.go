package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond every 10ms until it returns true or timeout passes,
// then fails the test with msg. It bounds waits for things that happen
// asynchronously (a watch event, a lease expiry); it is not a speed test.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
