package regwatch

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestMain fails the package when a test leaves goroutines behind: a
// Watcher's Run must take its monitor, its watch and its freshness reads
// with it when ctx ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(testkit.EtcdLeakIgnores(), goleak.IgnoreCurrent())...)
}
