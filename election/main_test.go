package election

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind. The only ones
// ignored are idle keep-alive HTTP connections between etcd cluster members:
// a follower forwards lease renewals to the raft leader over HTTP, and
// embedded etcd does not close that transport's idle connections when it
// stops. This package itself makes no HTTP requests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
		goleak.IgnoreAnyFunction("net/http.(*connReader).backgroundRead"),
	)
}
