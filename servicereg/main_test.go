package servicereg

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestMain checks that no agent leaves a goroutine behind once Run has
// returned, ignoring only the idle HTTP connections embedded etcd leaves
// between its members.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testkit.EtcdLeakIgnores()...)
}
