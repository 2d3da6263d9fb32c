package testkit

import (
	"bytes"
	"context"
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
	t          testing.TB
	RuntimeDir string // XDG_RUNTIME_DIR of the manager
	ConfigHome string // XDG_CONFIG_HOME of the manager
	UnitDir    string // where WriteUnit puts unit files
	cmd        *exec.Cmd
}

// StartSystemd starts a systemd user manager for the test and stops it when
// the test ends. It skips the test only where systemd is absent.
func StartSystemd(t testing.TB) *Systemd {
	t.Helper()
	if _, err := os.Stat(SystemdBinary); err != nil {
		t.Skipf("systemd is not installed here (%s: %v): this test needs a real systemd user manager", SystemdBinary, err)
	}
	// systemd refuses to act as a manager unless the machine booted with
	// systemd, which it detects by this directory.
	if err := os.MkdirAll("/run/systemd/system", 0o755); err != nil {
		t.Skipf("cannot create /run/systemd/system (%v): systemd user manager unavailable", err)
	}
	// A short path: unix socket paths are limited to 108 bytes.
	rt, err := os.MkdirTemp("", "rcsd")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &Systemd{t: t, RuntimeDir: rt, ConfigHome: filepath.Join(rt, "config")}
	s.UnitDir = filepath.Join(s.ConfigHome, "systemd", "user")
	if err := os.MkdirAll(s.UnitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(SystemdBinary, "--user")
	s.cmd.Env = append(os.Environ(), s.Env()...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logBuf bytes.Buffer
	s.cmd.Stdout = &logBuf
	s.cmd.Stderr = &logBuf
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start systemd --user: %v", err)
	}
	t.Cleanup(s.stop)
	sock := filepath.Join(rt, "systemd", "private")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd --user did not create %s within 20s; its output:\n%s", sock, logBuf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
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

func (s *Systemd) stop() {
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
	s.t.Helper()
	out, err := s.TrySystemctl(args...)
	if err != nil {
		s.t.Fatalf("systemctl --user %s: %v\n%s", strings.Join(args, " "), err, out)
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

// WriteUnit writes a unit file and reloads the manager.
func (s *Systemd) WriteUnit(name, content string) {
	s.t.Helper()
	if err := os.WriteFile(filepath.Join(s.UnitDir, name), []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.Systemctl("daemon-reload")
}

// SleepUnit is a service unit that runs until stopped.
const SleepUnit = "[Service]\nExecStart=/bin/sleep infinity\n"

// FailingUnit is a service that fails a moment after it starts.
func FailingUnit(after time.Duration) string {
	return fmt.Sprintf("[Service]\nExecStart=/bin/sh -c 'sleep %.3f; exit 3'\n", after.Seconds())
}
