package rollcall_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestMain fails the package when a test leaves goroutines behind: every
// loader's watch must stop with its last server block. Embedded etcd's peer
// HTTP connections and the forward plugin's connection managers (in the
// example Corefiles) wind down on their own after a test and are ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(append(testkit.EtcdLeakIgnores(), testkit.CoreDNSLeakIgnores()...),
		goleak.IgnoreCurrent())...)
}
