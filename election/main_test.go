package election

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestMain checks that no test leaves a goroutine behind, ignoring only the
// idle HTTP connections embedded etcd leaves between its members. This
// package itself makes no HTTP requests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testkit.EtcdLeakIgnores()...)
}
