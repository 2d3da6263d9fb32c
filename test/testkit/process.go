package testkit

import (
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// Process is a child process that a test or the benchmark started: its
// stdout and stderr collected in Out, its exit awaited once in the
// background so that any number of callers can wait for it.
type Process struct {
	Cmd  *exec.Cmd
	Out  *Buffer
	done chan struct{}
	err  error // of Wait, once done is closed
}

// StartProcess starts cmd (configured but not started) with its output
// going to the returned Process's Out.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	p := &Process{Cmd: cmd, Out: new(Buffer), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Out, p.Out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is Wait's error once the process has exited (nil for a clean exit),
// and nil while it runs.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Stop sends SIGTERM and waits up to grace for the exit, then kills the
// process; killed says it had to. A process already gone is left alone.
func (p *Process) Stop(grace time.Duration) (killed bool) {
	if p.Exited() {
		return false
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return false
	case <-time.After(grace):
		p.Kill()
		return true
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}
