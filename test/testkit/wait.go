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
	EventuallySaw(t, timeout, msg, func() (bool, string) { return cond(), "" })
}

// EventuallySaw is Eventually for a condition that also says what it saw
// (an answer, a state): the failure names the last of it.
func EventuallySaw(t testing.TB, timeout time.Duration, msg string, cond func() (ok bool, saw string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if saw != "" {
				t.Fatalf("after %v: %s; last seen: %s", timeout, msg, saw)
			}
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
