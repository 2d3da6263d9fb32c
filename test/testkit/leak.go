package testkit

import "go.uber.org/goleak"

// EtcdLeakIgnores are the goroutines a goleak check must ignore after tests
// that ran embedded etcd: idle keep-alive HTTP connections between members (a
// follower forwards lease renewals to the raft leader over HTTP), which
// embedded etcd does not close when it stops. Nothing else is ignored.
func EtcdLeakIgnores() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
		goleak.IgnoreAnyFunction("net/http.(*connReader).backgroundRead"),
	}
}
