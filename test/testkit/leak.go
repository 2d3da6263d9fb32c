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

// CoreDNSLeakIgnores are what a goleak check must also ignore after tests
// that started CoreDNS servers in the test process: the forward plugin's
// connection manager, which lives as long as its transport, and the HTTP
// servers of plugins such as prometheus, which CoreDNS stops without waiting.
func CoreDNSLeakIgnores() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/coredns/coredns/plugin/pkg/proxy.(*Transport).connManager"),
		goleak.IgnoreAnyFunction("net/http.(*Server).Serve"),
	}
}
