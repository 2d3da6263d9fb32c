package servicereg

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// serveControl runs a.ServeControl until the returned stop is called (or
// the test ends).
func serveControl(t *testing.T, a *Agent) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.ServeControl(ctx) })
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// call sends one request to the socket at path, bounded by wait.
func call(t *testing.T, path string, req ControlRequest) (*ControlResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return CallControl(ctx, path, req)
}

func mustDrain(t *testing.T, path, op, service string) DrainResult {
	t.Helper()
	resp, err := call(t, path, ControlRequest{Op: op, Service: service})
	if err != nil {
		t.Fatalf("%s %s: %v", op, service, err)
	}
	if resp.Drain == nil {
		t.Fatalf("%s %s: no result: %+v", op, service, resp)
	}
	return *resp.Drain
}

func recordState(t *testing.T, a *Agent, service string) registry.State {
	t.Helper()
	v, _, ok := get(t, a.cli, keys.Instance("h1", service))
	if !ok {
		return ""
	}
	in, err := registry.DecodeInstance(registry.Key{Kind: registry.KindInstance, Host: "h1", Service: service}, []byte(v))
	if err != nil {
		t.Fatalf("record of %s: %s: %v", service, v, err)
	}
	return in.State
}

func TestControlDrain(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	sd.WriteUnit(unit("web"), testkit.SleepUnit)
	sd.WriteUnit(unit("api"), testkit.SleepUnit)
	sd.Systemctl("start", unit("web"))
	dir := filepath.Join(t.TempDir(), "run", "servicereg") // not there yet
	sock := filepath.Join(dir, "control.sock")
	cfg := userConfig(e, 10*time.Second, Service{Name: "web", Unit: unit("web")}, Service{Name: "api", Unit: unit("api")})
	cfg.Control, cfg.DNSTTL = sock, 2*time.Second
	a, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	stopControl := serveControl(t, a)
	testkit.Eventually(t, wait, "control socket open", func() bool { _, err := os.Stat(sock); return err == nil })
	testkit.Eventually(t, wait, "web registered", func() bool { return recordState(t, a, "web") == registry.StatePassing })

	// Root only: the socket is 0600, its new folder 0755.
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %v %v, want a 0600 socket", fi.Mode(), err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("socket folder %v %v, want 0755", fi.Mode(), err)
	}

	before := time.Now()
	res := mustDrain(t, sock, OpDrain, "web")
	if !res.Drained || !res.Changed || !res.Registered || res.State != registry.StateDraining || res.DNSTTL != 2*time.Second {
		t.Fatalf("drain: %+v", res)
	}
	if res.WrittenAt.Before(before) || !res.ForgetBy().Equal(res.WrittenAt.Add(3*time.Second)) {
		t.Fatalf("drain written at %v (asked at %v), forget by %v", res.WrittenAt, before, res.ForgetBy())
	}
	// Answered after etcd took it: the record is draining already.
	if got := recordState(t, a, "web"); got != registry.StateDraining {
		t.Fatalf("record %s right after the drain's answer", got)
	}
	if res := mustDrain(t, sock, OpDrain, "web"); res.Changed || !res.Drained {
		t.Fatalf("second drain: %+v", res)
	}
	resp, err := call(t, sock, ControlRequest{Op: OpStatus})
	if err != nil || resp.Status == nil {
		t.Fatalf("status: %+v %v", resp, err)
	}
	if s := instanceOf(t, *resp.Status, "web"); !s.Drained || s.State != registry.StateDraining || s.InService {
		t.Fatalf("status of a drained instance: %+v", s)
	}
	if got := metricValue(t, a, `rollcall_servicereg_instance_state{service="web",state="draining"}`); got != "1" {
		t.Errorf("instance_state draining = %q", got)
	}

	// Mistakes are answered with what to do.
	if _, err := call(t, sock, ControlRequest{Op: OpDrain, Service: "nope"}); err == nil || !strings.Contains(err.Error(), `unknown service "nope"; this agent has api, web`) {
		t.Errorf("unknown service: %v", err)
	}
	if _, err := call(t, sock, ControlRequest{Op: "explode"}); err == nil || !strings.Contains(err.Error(), "unknown op") {
		t.Errorf("unknown op: %v", err)
	}

	res = mustDrain(t, sock, OpUndrain, "web")
	if res.Drained || !res.Changed || res.State != registry.StatePassing {
		t.Fatalf("undrain: %+v", res)
	}
	if got := recordState(t, a, "web"); got != registry.StatePassing {
		t.Fatalf("record %s after undrain", got)
	}

	// A drain lasts for the unit's activation: a stop ends it.
	mustDrain(t, sock, OpDrain, "web")
	sd.Systemctl("stop", unit("web"))
	testkit.Eventually(t, wait, "web gone", func() bool { return recordState(t, a, "web") == "" })
	sd.Systemctl("start", unit("web"))
	testkit.Eventually(t, wait, "web back, passing", func() bool { return recordState(t, a, "web") == registry.StatePassing })

	// A drain of an inactive unit is accepted and not remembered.
	res = mustDrain(t, sock, OpDrain, "api")
	if res.Drained || res.Registered || res.Changed || res.WrittenAt.IsZero() {
		t.Fatalf("drain of an inactive unit: %+v", res)
	}
	sd.Systemctl("start", unit("api"))
	testkit.Eventually(t, wait, "api registered passing", func() bool { return recordState(t, a, "api") == registry.StatePassing })

	// A reload with another path moves the socket.
	moved := filepath.Join(t.TempDir(), "moved.sock")
	next := *a.Config()
	next.Control = moved
	if err := a.Reload(&next); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, wait, "socket moved", func() bool {
		_, errOld := os.Stat(sock)
		_, errNew := os.Stat(moved)
		return errors.Is(errOld, os.ErrNotExist) && errNew == nil
	})
	if _, err := call(t, moved, ControlRequest{Op: OpStatus}); err != nil {
		t.Fatalf("status on the moved socket: %v", err)
	}
	stopControl()
	if _, err := os.Stat(moved); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after the agent stopped: %v", err)
	}
}

// TestControlSocketOwnership: a stale socket file is replaced; one another
// agent answers on is not, and is taken over once that agent goes.
func TestControlSocketOwnership(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	sock := filepath.Join(t.TempDir(), "control.sock")

	// A dead agent's socket: the file is there, nobody answers.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	var secondLog testkit.Buffer
	agent := func(name string) *Agent {
		cfg := &Config{Host: "h1", Etcd: EtcdConfig{Endpoints: e.Endpoints()}, Control: sock}
		log := testLogger(t).With("agent", name)
		if name == "second" {
			log = slog.New(slog.NewTextHandler(io.MultiWriter(tWriter{t}, &secondLog), nil))
		}
		// Never Run: the agent does not close a client it was given.
		a, err := New(cfg, Options{Logger: log, NoSystemd: true, Static: []Service{{Name: name}}, Client: cli})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	first, second := agent("first"), agent("second")
	stopFirst := serveControl(t, first)
	answeredBy := func() string {
		resp, err := call(t, sock, ControlRequest{Op: OpDrain, Service: "x"})
		if err == nil || resp == nil {
			return ""
		}
		if strings.Contains(err.Error(), "this agent has first") {
			return "first"
		}
		if strings.Contains(err.Error(), "this agent has second") {
			return "second"
		}
		return ""
	}
	testkit.Eventually(t, wait, "the stale socket replaced", func() bool { return answeredBy() == "first" })

	serveControl(t, second)
	testkit.Eventually(t, wait, "the second agent reports the socket taken", func() bool {
		return strings.Contains(secondLog.String(), "another agent answers on "+sock)
	})
	if got := metricValue(t, second, "rollcall_servicereg_control_socket_up"); got != "0" {
		t.Errorf("control_socket_up of the second agent = %q", got)
	}
	if got := answeredBy(); got != "first" {
		t.Fatalf("socket answered by %q, want the first agent's, kept", got)
	}
	stopFirst()
	testkit.Eventually(t, wait, "the second agent takes the socket over", func() bool { return answeredBy() == "second" })
}
