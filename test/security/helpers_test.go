package security

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	// The same CoreDNS build as bin/coredns.
	_ "github.com/rollcall/rollcall/internal/corednsbuild"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// wait bounds asynchronous outcomes: generous, the machine is shared.
const wait = 60 * time.Second

var keys = registry.MustKeys(registry.DefaultPrefix)

// unit names a test unit of this package uniquely on this machine (see
// testkit.UnitName).
func unit(name string) string { return testkit.UnitName("rcsec", name) }

// agent is a servicereg process (the real binary) with its output and its
// /metrics and /healthz listener.
type agent struct {
	*testkit.Process
	metrics string // host:port of /metrics and /healthz
}

// startAgent writes cfgYAML to a file and runs servicereg on it, pointed at
// the test's systemd user manager; it stops the agent (SIGTERM) when the
// test ends.
func startAgent(t *testing.T, sd *testkit.Systemd, cfgYAML string) *agent {
	t.Helper()
	path := filepath.Join(t.TempDir(), "servicereg.yml")
	if err := os.WriteFile(path, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &agent{metrics: fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))}
	cmd := exec.Command(testkit.Binary(t, "servicereg"), "-config", path, "-metrics", a.metrics)
	cmd.Env = append(os.Environ(), sd.Env()...)
	var err error
	if a.Process, err = testkit.StartProcess(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if a.stop() != nil && !t.Failed() {
			t.Logf("servicereg output:\n%s", a.Out.String())
		}
	})
	return a
}

// stop sends SIGTERM and waits for the exit (killing after 20s); it returns
// the exit error (nil for a clean exit).
func (a *agent) stop() error {
	a.Stop(20 * time.Second)
	return a.Err()
}

// get fetches path from the agent's listener: status code and body, or 0 and
// the error text when the listener does not answer.
func (a *agent) get(path string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + a.metrics + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (a *agent) healthz() (int, string) { return a.get("/healthz") }

// metric returns the value of the series named exactly (name{labels}), or
// "" when absent.
func (a *agent) metric(series string) string {
	_, body := a.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// runCLI runs the rollcall binary and returns stdout, stderr and the exit
// code.
func runCLI(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testkit.Binary(t, "rollcall"), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("rollcall %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// freeDualPort is testkit.FreePort for a server bound to 127.0.0.1 and ::1:
// the port must also be free on ::1, for TCP and UDP.
func freeDualPort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		p := testkit.FreePort(t)
		addr := net.JoinHostPort("::1", strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		u.Close()
		return p
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1 in 20 tries")
	return 0
}
