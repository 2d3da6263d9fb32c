package security

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestMain fails the package when a test leaves goroutines behind (a
// plugin's etcd watch, a test DNS server). Embedded etcd's idle peer
// connections and the forward plugin's connection manager wind down on
// their own and are ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(append(testkit.EtcdLeakIgnores(), testkit.CoreDNSLeakIgnores()...),
		goleak.IgnoreCurrent())...)
}
