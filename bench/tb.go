package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
)

// benchTB lets the benchmark program use test/testkit, whose helpers take a
// testing.TB, outside `go test`. Fatal and Skip end the current part (see
// runPart) by panicking with a value runPart recovers; Cleanup functions run
// when the part ends, last first, as in a test.
//
// testing.TB has an unexported method, so the interface is embedded (nil):
// testkit calls only the methods defined below; any other would be a bug in
// this adapter and panics loudly.
type benchTB struct {
	testing.TB
	name string

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// fatalErr and skipErr carry Fatal and Skip out of a part.
type fatalErr struct{ msg string }
type skipErr struct{ msg string }

func newTB(name string) *benchTB { return &benchTB{name: name} }

func (t *benchTB) Helper()      {}
func (t *benchTB) Name() string { return t.name }
func (t *benchTB) Failed() bool { t.mu.Lock(); defer t.mu.Unlock(); return t.failed }
func (t *benchTB) Fail()        { t.mu.Lock(); t.failed = true; t.mu.Unlock() }
func (t *benchTB) FailNow()     { t.Fatal("FailNow") }
func (t *benchTB) Log(args ...any) {
	slog.Info(t.name + ": " + fmt.Sprint(args...))
}
func (t *benchTB) Logf(format string, args ...any) {
	slog.Info(t.name + ": " + fmt.Sprintf(format, args...))
}
func (t *benchTB) Error(args ...any) { t.Fail(); t.Log(args...) }
func (t *benchTB) Errorf(format string, args ...any) {
	t.Fail()
	t.Logf(format, args...)
}
func (t *benchTB) Fatal(args ...any) { t.Fail(); panic(fatalErr{fmt.Sprint(args...)}) }
func (t *benchTB) Fatalf(format string, args ...any) {
	t.Fail()
	panic(fatalErr{fmt.Sprintf(format, args...)})
}
func (t *benchTB) Skip(args ...any) { panic(skipErr{fmt.Sprint(args...)}) }
func (t *benchTB) Skipf(format string, args ...any) {
	panic(skipErr{fmt.Sprintf(format, args...)})
}
func (t *benchTB) SkipNow()                 { panic(skipErr{"skipped"}) }
func (t *benchTB) Context() context.Context { return context.Background() }

// Setenv sets an environment variable for the rest of the program and
// restores it at cleanup.
func (t *benchTB) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	os.Setenv(key, value)
	t.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}

func (t *benchTB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

func (t *benchTB) TempDir() string {
	dir, err := os.MkdirTemp("", "rollcall-bench")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// cleanup runs the cleanup functions, last registered first.
func (t *benchTB) cleanup() {
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		f()
	}
}

// runTB runs f with a fresh benchTB, turns Fatal/Skip into errors and always
// runs the cleanups. skipped reports a Skip (a missing prerequisite).
func runTB(name string, f func(t *benchTB) error) (skipped bool, err error) {
	t := newTB(name)
	defer t.cleanup()
	defer func() {
		switch v := recover().(type) {
		case nil:
		case fatalErr:
			err = fmt.Errorf("%s", v.msg)
		case skipErr:
			skipped, err = true, fmt.Errorf("%s", v.msg)
		default:
			panic(v)
		}
	}()
	return false, f(t)
}
