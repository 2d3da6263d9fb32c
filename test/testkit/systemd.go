package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SystemdBinary is the systemd manager started with --user.
const SystemdBinary = "/lib/systemd/systemd"

// Systemd is a private systemd user manager: its own XDG_RUNTIME_DIR and
// XDG_CONFIG_HOME, so tests never touch the machine's real units. Agents reach
// it as they would any user manager, through $XDG_RUNTIME_DIR.
type Systemd struct {
	t          testing.TB // of StartSystemd, for Systemctl and WriteUnit; nil from NewSystemd
	RuntimeDir string     // XDG_RUNTIME_DIR of the manager
	ConfigHome string     // XDG_CONFIG_HOME of the manager
	UnitDir    string     // where WriteUnit puts unit files
	cmd        *exec.Cmd
}

// ErrNoSystemd is NewSystemd's error where this machine cannot run a
// systemd user manager: StartSystemd skips the test then, and the benchmark
// leaves the part unmeasured.
var ErrNoSystemd = errors.New("no systemd user manager here")

// StartSystemd starts a systemd user manager for the test and stops it when
// the test ends. It skips the test only where systemd is absent.
func StartSystemd(t testing.TB) *Systemd {
	t.Helper()
	s, err := NewSystemd()
	if errors.Is(err, ErrNoSystemd) {
		t.Skipf("%v: this test needs a real systemd user manager", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.t = t
	t.Cleanup(s.Close)
	return s
}

// NewSystemd is StartSystemd for a program that is not a test (the
// benchmark): it returns the error (wrapping ErrNoSystemd where systemd is
// absent), and the caller stops the manager with Close. Use TrySystemctl
// and TryWriteUnit on it.
func NewSystemd() (*Systemd, error) {
	if _, err := os.Stat(SystemdBinary); err != nil {
		return nil, fmt.Errorf("%w: systemd is not installed (%s: %v)", ErrNoSystemd, SystemdBinary, err)
	}
	// systemd refuses to act as a manager unless the machine booted with
	// systemd, which it detects by this directory.
	if err := os.MkdirAll("/run/systemd/system", 0o755); err != nil {
		return nil, fmt.Errorf("%w: cannot create /run/systemd/system (%v)", ErrNoSystemd, err)
	}
	// A short path: unix socket paths are limited to 108 bytes.
	rt, err := os.MkdirTemp("", "rcsd")
	if err != nil {
		return nil, err
	}
	s := &Systemd{RuntimeDir: rt, ConfigHome: filepath.Join(rt, "config")}
	s.UnitDir = filepath.Join(s.ConfigHome, "systemd", "user")
	if err := s.start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// start runs systemd --user and waits until its private socket is there.
func (s *Systemd) start() error {
	if err := os.Chmod(s.RuntimeDir, 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(s.UnitDir, 0o755); err != nil {
		return err
	}
	s.cmd = exec.Command(SystemdBinary, "--user")
	s.cmd.Env = append(os.Environ(), s.Env()...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logBuf Buffer
	s.cmd.Stdout = &logBuf
	s.cmd.Stderr = &logBuf
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		return fmt.Errorf("start systemd --user: %w", err)
	}
	sock := filepath.Join(s.RuntimeDir, "systemd", "private")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("systemd --user did not create %s within 20s; its output:\n%s", sock, logBuf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Env returns the environment that points a client (systemctl --user, an
// agent with systemd: user) at this manager.
func (s *Systemd) Env() []string {
	return []string{
		"XDG_RUNTIME_DIR=" + s.RuntimeDir,
		"XDG_CONFIG_HOME=" + s.ConfigHome,
		"DBUS_SESSION_BUS_ADDRESS=unix:path=" + filepath.Join(s.RuntimeDir, "bus"),
	}
}

// Setenv points this process (an in-process agent) at the manager for the
// rest of the test.
func (s *Systemd) Setenv(t *testing.T) {
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Close stops the manager, and with it its units, and removes its folders.
func (s *Systemd) Close() {
	if s.cmd != nil && s.cmd.Process != nil {
		// The manager stops its units on SIGTERM; kill the group after that.
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
	os.RemoveAll(s.RuntimeDir)
}

// Systemctl runs systemctl --user against this manager and returns its
// combined output; it fails the test when systemctl fails.
func (s *Systemd) Systemctl(args ...string) string {
	t := s.test("Systemctl")
	t.Helper()
	out, err := s.TrySystemctl(args...)
	if err != nil {
		t.Fatalf("systemctl --user %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TrySystemctl is Systemctl returning the error instead of failing.
func (s *Systemd) TrySystemctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "systemctl", append([]string{"--user"}, args...)...)
	cmd.Env = append(os.Environ(), s.Env()...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// WriteUnit writes a unit file and reloads the manager; it fails the test
// when either fails.
func (s *Systemd) WriteUnit(name, content string) {
	t := s.test("WriteUnit")
	t.Helper()
	if err := s.TryWriteUnit(name, content); err != nil {
		t.Fatal(err)
	}
}

// TryWriteUnit is WriteUnit returning the error.
func (s *Systemd) TryWriteUnit(name, content string) error {
	if err := os.WriteFile(filepath.Join(s.UnitDir, name), []byte(content), 0o644); err != nil {
		return err
	}
	if out, err := s.TrySystemctl("daemon-reload"); err != nil {
		return fmt.Errorf("systemctl --user daemon-reload: %w\n%s", err, out)
	}
	return nil
}

// test is the test of StartSystemd, which the methods that fail a test
// need; a manager from NewSystemd has none.
func (s *Systemd) test(method string) testing.TB {
	if s.t == nil {
		panic("testkit: Systemd." + method + " of a manager from NewSystemd: use Try" + method)
	}
	return s.t
}

// SleepUnit is a service unit that runs until stopped.
const SleepUnit = "[Service]\nExecStart=/bin/sleep infinity\n"

// FailingUnit is a service that fails a moment after it starts.
func FailingUnit(after time.Duration) string {
	return fmt.Sprintf("[Service]\nExecStart=/bin/sh -c 'sleep %.3f; exit 3'\n", after.Seconds())
}

// UnitName names a test unit uniquely on this machine: name-<tag><pid>.service.
// Every systemd user manager started as root here puts its units at the same
// cgroup path (/app.slice/<unit>), so managers of test processes running at
// the same time (other packages too) would fight over a unit name they
// share. Each package passes a tag of its own ("rcsr", "rcsec", ...): a unit
// left behind by a killed test process then names its package, and is not
// taken for another package's when its pid comes round again.
func UnitName(tag, name string) string {
	return fmt.Sprintf("%s-%s%d.service", name, tag, os.Getpid())
}
