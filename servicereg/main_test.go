package servicereg

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no agent leaves a goroutine behind once Run has
// returned. Ignored: idle HTTP keep-alive connections between embedded etcd
// cluster members, which etcd does not close when a member stops.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
		goleak.IgnoreAnyFunction("net/http.(*connReader).backgroundRead"),
	)
}
