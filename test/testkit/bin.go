package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// RepoRoot returns the repository's top folder (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the repository root")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	binMu    sync.Mutex
	binBuilt = map[string]string{}
)

// Binary returns the path of one of the project's binaries (coredns,
// servicereg, rollcall). `make test` builds them once into bin/ and passes
// ROLLCALL_BIN; a plain `go test` builds the missing one into a temporary
// folder once per test process, so a test never runs a stale binary by
// accident.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("ROLLCALL_BIN"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("ROLLCALL_BIN=%s has no %s: run `make build` (%v)", dir, name, err)
		}
		return p
	}
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binBuilt[name]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "rollcall-bin")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", p, "./cmd/"+name)
	cmd.Dir = RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out)
	}
	binBuilt[name] = p
	return p
}

// Cmd returns an exec.Cmd for a project binary with stdout and stderr going to
// the test log when the test fails.
func Cmd(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	return exec.Command(Binary(t, name), args...)
}
