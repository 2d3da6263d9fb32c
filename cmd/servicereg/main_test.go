package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/servicereg"
	"github.com/rollcall/rollcall/test/testkit"
)

const wait = 30 * time.Second

var keys = registry.MustKeys(registry.DefaultPrefix)

// unit names a test unit of this package uniquely on this machine (see
// testkit.UnitName).
func unit(name string) string { return testkit.UnitName("rcsc", name) }

// svc is one service entry of a config, watching its unique unit.
func svc(name string) string { return fmt.Sprintf("  - name: %s\n    unit: %s\n", name, unit(name)) }

// agentProc is a running servicereg binary.
type agentProc struct{ *testkit.Process }

func startBinary(t *testing.T, cfgPath string, env []string, args ...string) *agentProc {
	t.Helper()
	cmd := testkit.Cmd(t, "servicereg", append([]string{"-config", cfgPath, "-metrics", "", "-log-level", "debug"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	tp, err := testkit.StartProcess(cmd)
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProc{tp}
	t.Cleanup(func() {
		if !p.Exited() {
			p.Kill()
		}
		if t.Failed() {
			t.Logf("servicereg output:\n%s", p.Out.String())
		}
	})
	return p
}

func (p *agentProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.Done():
		return p.Err()
	case <-time.After(wait):
		t.Fatalf("servicereg did not exit within %v", wait)
		return nil
	}
}

// setup starts etcd and a systemd user manager with web.service running and
// writes a config for host h1 with the given ttl and services block.
func setup(t *testing.T, ttl string, services string) (*testkit.Etcd, *testkit.Systemd, string) {
	t.Helper()
	e := testkit.StartEtcd(t)
	sd := testkit.StartSystemd(t)
	sd.WriteUnit(unit("web"), testkit.SleepUnit)
	sd.WriteUnit(unit("api"), testkit.SleepUnit)
	sd.Systemctl("start", unit("web"), unit("api"))
	p := filepath.Join(t.TempDir(), "servicereg.yml")
	writeFile(t, p, config(e, p, ttl, services))
	return e, sd, p
}

// config is the config written at path: its control socket sits beside it,
// so that agents of tests running at the same time never share one.
func config(e *testkit.Etcd, path, ttl, services string) string {
	return fmt.Sprintf("host: h1\netcd:\n  endpoints: [%q]\nttl: %s\nsystemd: user\ncontrol: %s\nservices:\n%s", e.ClientURL, ttl, controlOf(path), services)
}

// controlOf is the control socket of the config at path.
func controlOf(path string) string { return filepath.Join(filepath.Dir(path), "control.sock") }

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSIGTERMRevokes(t *testing.T) {
	e, sd, cfg := setup(t, "60s", svc("web"))
	cli := e.Client(t)
	p := startBinary(t, cfg, sd.Env())
	web := keys.Instance("h1", "web")
	testkit.Eventually(t, wait, "web registered", func() bool { return testkit.Exists(t, cli, web) })
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v (want status 0)", err)
	}
	// The lease is revoked before the process exits: with a 60s TTL,
	// anything still there now would be waiting for expiry.
	if testkit.Exists(t, cli, web) || testkit.Exists(t, cli, keys.Host("h1")) {
		t.Fatal("names still registered after SIGTERM")
	}
}

func TestSIGKILLExpires(t *testing.T) {
	e, sd, cfg := setup(t, "2s", svc("web"))
	cli := e.Client(t)
	p := startBinary(t, cfg, sd.Env())
	web := keys.Instance("h1", "web")
	testkit.Eventually(t, wait, "web registered", func() bool { return testkit.Exists(t, cli, web) })
	if err := p.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.wait(t)
	testkit.Eventually(t, wait, "web gone when the lease expired", func() bool {
		return !testkit.Exists(t, cli, web) && !testkit.Exists(t, cli, keys.Host("h1"))
	})
}

func TestSIGHUPReload(t *testing.T) {
	e, sd, cfg := setup(t, "10s", svc("web"))
	cli := e.Client(t)
	p := startBinary(t, cfg, sd.Env())
	web, api := keys.Instance("h1", "web"), keys.Instance("h1", "api")
	testkit.Eventually(t, wait, "web registered", func() bool { return testkit.Exists(t, cli, web) })

	// api arrives through a services.d file, web leaves the main file.
	writeFile(t, cfg, config(e, cfg, "10s", "  []\n"))
	if err := os.MkdirAll(filepath.Join(filepath.Dir(cfg), "services.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(filepath.Dir(cfg), "services.d", "api.yml"), "- name: api\n  unit: "+unit("api")+"\n")
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, wait, "api registered and web gone after SIGHUP", func() bool {
		return testkit.Exists(t, cli, api) && !testkit.Exists(t, cli, web)
	})

	// A bad config is refused and the running one kept.
	writeFile(t, cfg, config(e, cfg, "10s", "  - name: Bad_Name\n"))
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, wait, "refusal logged", func() bool {
		return strings.Contains(p.Out.String(), "new config refused, keeping the running one")
	})
	if !strings.Contains(p.Out.String(), `servicereg.yml:8: services[0].name`) {
		t.Errorf("refusal does not name the file and line:\n%s", p.Out.String())
	}
	sd.Systemctl("stop", unit("api"))
	testkit.Eventually(t, wait, "the kept config still works: api deregistered", func() bool { return !testkit.Exists(t, cli, api) })
	select {
	case <-p.Done():
		t.Fatalf("servicereg exited after a bad reload: %v", p.Err())
	default:
	}
}

// TestUnderSystemd runs the agent as a Type=notify unit with a watchdog, as
// deploy/servicereg.service does: the start succeeds only after READY=1, and
// the unit stays active only while WATCHDOG=1 keeps coming.
func TestUnderSystemd(t *testing.T) {
	e, sd, cfg := setup(t, "10s", svc("web"))
	cli := e.Client(t)
	bin := testkit.Binary(t, "servicereg")
	sd.WriteUnit(unit("servicereg"), fmt.Sprintf(`[Service]
Type=notify
ExecStart=%s -config %s -metrics ""
ExecReload=/bin/kill -HUP $MAINPID
WatchdogSec=2s
Environment=XDG_RUNTIME_DIR=%s
`, bin, cfg, sd.RuntimeDir))
	sd.Systemctl("start", unit("servicereg")) // returns once READY=1 arrived
	if !testkit.Exists(t, cli, keys.Instance("h1", "web")) {
		t.Fatal("READY=1 sent before the first registration was written")
	}
	// Outlive several watchdog periods: the unit must still be the same
	// process, never restarted or killed by the watchdog.
	pid := strings.TrimSpace(sd.Systemctl("show", "-p", "MainPID", "--value", unit("servicereg")))
	time.Sleep(5 * time.Second)
	if st := strings.TrimSpace(sd.Systemctl("show", "-p", "ActiveState", "--value", unit("servicereg"))); st != "active" {
		t.Fatalf("servicereg.service is %s after 5s with WatchdogSec=2s", st)
	}
	if now := strings.TrimSpace(sd.Systemctl("show", "-p", "MainPID", "--value", unit("servicereg"))); now != pid {
		t.Fatalf("servicereg restarted (pid %s -> %s)", pid, now)
	}
	sd.Systemctl("stop", unit("servicereg"))
	if testkit.Exists(t, cli, keys.Instance("h1", "web")) {
		t.Fatal("web still registered after the agent unit stopped")
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	writeFile(t, good, "host: h1\nservices:\n  - name: web\n")
	out, err := exec.Command(testkit.Binary(t, "servicereg"), "-check", "-config", good).CombinedOutput()
	if err != nil {
		t.Fatalf("-check of a good config: %v\n%s", err, out)
	}
	for _, w := range []string{"host: h1", "ttl: 10s", "prefix: /rollcall", "unit: web.service", "http://127.0.0.1:2379", "systemd: system"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("-check output lacks %q:\n%s", w, out)
		}
	}
	bad := filepath.Join(dir, "bad.yml")
	writeFile(t, bad, "host: h1\nservices:\n  - name: web\n    ports: [{name: http, port: 99999}]\n")
	cmd := exec.Command(testkit.Binary(t, "servicereg"), "-check", "-config", bad)
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("-check of a bad config: %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "bad.yml:4: services[0].ports[0].port: 99999 is outside 1-65535") {
		t.Errorf("-check does not name file and line:\n%s", out)
	}
	// Refusing to start says the same.
	out, err = exec.Command(testkit.Binary(t, "servicereg"), "-config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bad.yml:4:") {
		t.Fatalf("start with a bad config: %v\n%s", err, out)
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"-help"}, &out, &out); code != 0 {
		t.Fatalf("-help exit %d", code)
	}
	for _, flag := range []string{"-config", "-check", "-metrics", "-log-level", "-log-format", "SIGHUP", "SIGTERM",
		"drain SERVICE", "undrain SERVICE", "status", "-wait", "ExecStop=+/usr/local/bin/servicereg drain web -wait", "/status"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("-help does not explain %s:\n%s", flag, out.String())
		}
	}
}

// TestNotify checks the sd_notify protocol on a socket of the test's own.
func TestNotify(t *testing.T) {
	e := testkit.StartEtcd(t)
	cfg := filepath.Join(t.TempDir(), "servicereg.yml")
	// No services: with systemd unused the agent is ready once the host record is written.
	writeFile(t, cfg, fmt.Sprintf("host: h1\netcd:\n  endpoints: [%q]\ncontrol: %s\n", e.ClientURL, controlOf(cfg)))
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// No systemd manager is reachable here (systemd: system in a test): with no
	// services configured the agent is ready all the same.
	startBinary(t, cfg, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=300000"})
	got := map[string]bool{}
	buf := make([]byte, 4096)
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	for !got["READY=1"] || !got["WATCHDOG=1"] {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("notify socket: %v (got %v)", err, got)
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			got[line] = true
		}
	}
	if !testkit.Exists(t, e.Client(t), keys.Host("h1")) {
		t.Fatal("READY=1 before the host record was written")
	}
}

// TestDrainWait: `servicereg drain web -wait` against the running agent
// returns no earlier than dns_ttl + 1s after etcd took the draining
// record, which etcd still holds then; undrain restores it; status shows
// it; mistakes exit 1 saying what is wrong.
func TestDrainWait(t *testing.T) {
	const dnsTTL = 2 * time.Second
	e, sd, cfg := setup(t, "10s", svc("web"))
	writeFile(t, cfg, config(e, cfg, "10s", svc("web"))+fmt.Sprintf("dns_ttl: %v\n", dnsTTL))
	cli := e.Client(t)
	startBinary(t, cfg, sd.Env())
	web := keys.Instance("h1", "web")
	testkit.Eventually(t, wait, "web registered", func() bool { return testkit.Exists(t, cli, web) })
	testkit.Eventually(t, wait, "control socket open", func() bool { _, err := os.Stat(controlOf(cfg)); return err == nil })

	// The key's history, with when each change reached the test.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := cli.Get(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	type change struct {
		at    time.Time
		value string
	}
	changes := make(chan change, 16)
	wch := cli.Watch(ctx, web, clientv3.WithRev(r.Header.Revision+1))
	go func() {
		for resp := range wch {
			for _, ev := range resp.Events {
				changes <- change{at: time.Now(), value: string(ev.Kv.Value)}
			}
		}
	}()

	// Flags after the service, as in the ExecStop recipe.
	out, err := testkit.Cmd(t, "servicereg", "drain", "web", "-wait", "-config", cfg).CombinedOutput()
	returned := time.Now()
	if err != nil {
		t.Fatalf("drain -wait: %v\n%s", err, out)
	}
	t.Logf("servicereg drain web -wait:\n%s", out)
	if !strings.Contains(string(out), "web drained at ") || !strings.Contains(string(out), "resolvers forget it by ") {
		t.Errorf("drain output:\n%s", out)
	}
	var drained change
	select {
	case drained = <-changes:
	case <-time.After(wait):
		t.Fatal("no write of web after the drain")
	}
	if !strings.Contains(drained.value, `"state":"draining"`) {
		t.Fatalf("first write after the drain: %s", drained.value)
	}
	// The test received the write a moment after etcd took it; the
	// quarter second covers that moment on a busy machine, far below the
	// 1s margin the bound is about.
	if earliest := drained.at.Add(dnsTTL + time.Second - 250*time.Millisecond); returned.Before(earliest) {
		t.Fatalf("drain -wait returned at %v, %v after the write reached the test; want at least dns_ttl + 1s (%v)",
			returned.Format("15:04:05.000"), returned.Sub(drained.at), dnsTTL+time.Second)
	}
	if v, _ := kvValue(t, cli, web); !strings.Contains(v, `"state":"draining"`) {
		t.Fatalf("record when drain -wait returned: %s", v)
	}

	out, err = testkit.Cmd(t, "servicereg", "status", "-config", cfg).CombinedOutput()
	t.Logf("servicereg status:\n%s", out)
	if err != nil || !strings.Contains(string(out), "draining") || !strings.Contains(string(out), "drained") {
		t.Errorf("status while drained: %v\n%s", err, out)
	}
	out, err = testkit.Cmd(t, "servicereg", "undrain", "web", "-config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "web undrained at ") {
		t.Fatalf("undrain: %v\n%s", err, out)
	}
	if v, _ := kvValue(t, cli, web); !strings.Contains(v, `"state":"passing"`) {
		t.Fatalf("record after undrain returned: %s", v)
	}
	out, err = testkit.Cmd(t, "servicereg", "status", "-json", "-socket", controlOf(cfg)).CombinedOutput()
	var st servicereg.Status
	if err != nil || json.Unmarshal(out, &st) != nil || len(st.Services) != 1 || st.Services[0].State != registry.StatePassing || st.Services[0].Drained {
		t.Errorf("status -json after undrain: %v\n%s", err, out)
	}

	// Mistakes: exit 1 with what is wrong.
	cmd := testkit.Cmd(t, "servicereg", "drain", "nope", "-config", cfg)
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), `unknown service "nope"; this agent has web`) {
		t.Errorf("drain of an unknown service: %v\n%s", err, out)
	}
	out, err = testkit.Cmd(t, "servicereg", "drain", "web", "-socket", filepath.Join(t.TempDir(), "none.sock")).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "cannot reach the agent") {
		t.Errorf("drain with no agent: %v\n%s", err, out)
	}
	out, err = testkit.Cmd(t, "servicereg", "drain", "-config", cfg).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("drain without a service: %v\n%s", err, out)
	}
}

func kvValue(t *testing.T, cli *clientv3.Client, key string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(r.Kvs) == 0 {
		return "", false
	}
	return string(r.Kvs[0].Value), true
}

// TestDrainOnStop runs the recipe of deploy/drain.conf: the drop-in's
// ExecStop drains the service and waits, so the program gets SIGTERM only
// dns_ttl + 1s after its record left etcd.
func TestDrainOnStop(t *testing.T) {
	const dnsTTL = 2 * time.Second
	e, sd, cfg := setup(t, "10s", svc("web"))
	writeFile(t, cfg, config(e, cfg, "10s", svc("web"))+fmt.Sprintf("dns_ttl: %v\n", dnsTTL))
	cli := e.Client(t)
	termed := filepath.Join(t.TempDir(), "termed")
	// The trap must not fork: systemd sends SIGTERM to every process of the
	// cgroup until none is new, so a date(1) forked by the trap can be killed
	// before it writes. bash's $EPOCHREALTIME is read without a fork (in a
	// function, so at the signal, not when the trap is set); $$ is systemd's
	// escape of $.
	sd.WriteUnit(unit("web"), fmt.Sprintf("[Service]\nExecStart=/bin/bash -c 'termed() { echo $$EPOCHREALTIME > %s; exit 0; }; trap termed TERM; while :; do sleep 0.05; done'\n", termed))
	dropIn, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "deploy", "drain.conf"))
	if err != nil {
		t.Fatal(err)
	}
	const recipe = "ExecStop=+/usr/local/bin/servicereg drain web -wait"
	if !strings.Contains(string(dropIn), recipe+"\n") {
		t.Fatalf("deploy/drain.conf lacks %q", recipe)
	}
	ours := strings.Replace(string(dropIn), recipe, fmt.Sprintf("ExecStop=+%s drain web -wait -config %s", testkit.Binary(t, "servicereg"), cfg), 1)
	dir := filepath.Join(sd.UnitDir, unit("web")+".d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "drain.conf"), ours)
	sd.Systemctl("daemon-reload")
	sd.Systemctl("restart", unit("web"))

	startBinary(t, cfg, sd.Env())
	web := keys.Instance("h1", "web")
	testkit.Eventually(t, wait, "web registered", func() bool { return testkit.Exists(t, cli, web) })
	testkit.Eventually(t, wait, "control socket open", func() bool { _, err := os.Stat(controlOf(cfg)); return err == nil })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := cli.Get(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	gone := make(chan time.Time, 1)
	wch := cli.Watch(ctx, web, clientv3.WithRev(r.Header.Revision+1))
	go func() {
		for resp := range wch {
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					select {
					case gone <- time.Now():
					default:
					}
				}
			}
		}
	}()
	sd.Systemctl("stop", unit("web")) // returns once the unit is stopped
	var goneAt time.Time
	select {
	case goneAt = <-gone:
	case <-time.After(wait):
		t.Fatal("web's record not deleted on stop")
	}
	b, err := os.ReadFile(termed)
	if err != nil {
		t.Fatalf("the program never got SIGTERM: %v", err)
	}
	sec, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		t.Fatal(err)
	}
	termAt := time.Unix(0, int64(sec*1e9))
	// As in TestDrainWait, a quarter second covers the test's own receipt
	// of the delete, which trails etcd's.
	if termAt.Before(goneAt.Add(dnsTTL + time.Second - 250*time.Millisecond)) {
		t.Fatalf("SIGTERM %v after the record left etcd; want at least dns_ttl + 1s (%v)", termAt.Sub(goneAt), dnsTTL+time.Second)
	}
	t.Logf("record gone, SIGTERM %v later", termAt.Sub(goneAt).Round(time.Millisecond))
}
