package electcmd

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollcall/rollcall/election"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestBinarySIGTERM: the real `rollcall elect` process, sent SIGTERM, stops
// CMD gracefully, resigns and exits with CMD's code.
func TestBinarySIGTERM(t *testing.T) {
	e := testkit.StartEtcd(t)
	var stdout, stderr testkit.Buffer
	cmd := testkit.Cmd(t, "rollcall", append([]string{"elect"}, args(e, "host-a", "web", "--", "sh", "-c",
		`trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.1; done`)...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	testkit.Eventually(t, wait, "CMD started; stderr: "+stderr.String(), func() bool {
		return strings.Contains(stdout.String(), "started")
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-exited:
		exited <- err // for the cleanup
	case <-time.After(wait):
		t.Fatalf("rollcall elect still running %v after SIGTERM; stderr:\n%s", wait, stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("exit: %v, want 0 (CMD's); stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "got-term") {
		t.Fatalf("CMD did not get SIGTERM: %q", stdout.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := election.CurrentLeader(ctx, e.Client(t), registry.MustKeys("/rollcall"), "web"); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("after SIGTERM: %v, want no leader", err)
	}
}
