package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/inspect"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// runCmd runs one command line and returns its exit code and output.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestMaintCommandLine checks what maint refuses before it talks to etcd.
func TestMaintCommandLine(t *testing.T) {
	t.Setenv(EnvEndpoints, "http://127.0.0.1:"+strconv.Itoa(testkit.FreePort(t)))
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStderr []string
	}{
		{name: "no action", args: []string{"maint"}, code: exitUsage, wantStderr: []string{"enable, disable or ls"}},
		{name: "unknown action", args: []string{"maint", "on", "h1"}, code: exitUsage, wantStderr: []string{`unknown action "on"`}},
		{name: "help", args: []string{"maint", "-h"}, code: exitOK, wantStderr: []string{"rollcall maint enable HOST [SERVICE]", "-reason", "admin"}},
		{name: "help of enable", args: []string{"maint", "enable", "-h"}, code: exitOK, wantStderr: []string{"-for", "-who", "-endpoints"}},
		{name: "help lists maint", args: []string{"help"}, code: exitOK},
		{name: "enable without a reason", args: []string{"maint", "enable", "h1"}, code: exitUsage,
			wantStderr: []string{"-reason is required", `-reason "kernel upgrade`}},
		{name: "enable with a blank reason", args: []string{"maint", "enable", "h1", "-reason", "  "}, code: exitUsage, wantStderr: []string{"-reason is required"}},
		{name: "enable without a host", args: []string{"maint", "enable", "-reason", "x"}, code: exitUsage, wantStderr: []string{"give HOST, or HOST SERVICE"}},
		{name: "three names", args: []string{"maint", "disable", "h1", "web", "db"}, code: exitUsage, wantStderr: []string{"got 3 names"}},
		{name: "bad host name", args: []string{"maint", "enable", "H_1", "-reason", "x"}, code: exitUsage, wantStderr: []string{"host name", "lower-case"}},
		{name: "bad service name", args: []string{"maint", "disable", "h1", "Web"}, code: exitUsage, wantStderr: []string{"service name"}},
		{name: "negative -for", args: []string{"maint", "enable", "h1", "-reason", "x", "-for", "-1h"}, code: exitUsage, wantStderr: []string{"-for -1h0m0s is negative"}},
		{name: "reason on two lines", args: []string{"maint", "enable", "h1", "-reason", "a\nb"}, code: exitUsage, wantStderr: []string{"control character"}},
		{name: "reason too long", args: []string{"maint", "enable", "h1", "-reason", strings.Repeat("x", 300)}, code: exitUsage, wantStderr: []string{"at most 256"}},
		{name: "ls with a name", args: []string{"maint", "ls", "h1"}, code: exitUsage, wantStderr: []string{`unexpected argument "h1"`}},
		{name: "unreachable etcd", args: []string{"maint", "disable", "h1", "-timeout", "1s"}, code: exitFail, wantStderr: []string{"delete /rollcall/maintenance/h1", "cannot connect"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
	if _, stdout, _ := runCmd(t, "help"); !strings.Contains(stdout, "rollcall maint enable HOST [SERVICE]") {
		t.Errorf("usage lacks maint:\n%s", stdout)
	}
}

// TestMaint enables, lists and disables maintenance against a real etcd,
// and reads the records back through registry and through ls and status.
func TestMaint(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	t.Setenv(EnvEndpoints, e.ClientURL)
	t.Setenv("USER", "alice")
	keys := registry.MustKeys(registry.DefaultPrefix)
	testkit.Put(t, cli, keys.Host("h1"), `{"name":"h1","addrs":{"public":["192.0.2.1"]}}`)
	testkit.Put(t, cli, keys.Instance("h1", "web"), `{"service":"web","host":"h1","state":"passing"}`)

	read := func(host, svc string) *registry.Maintenance {
		t.Helper()
		r, err := cli.Get(context.Background(), keys.Maintenance(host, svc))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Kvs) == 0 {
			return nil
		}
		m, err := registry.DecodeMaintenance(registry.Key{Kind: registry.KindMaintenance, Host: host, Service: svc}, r.Kvs[0].Value)
		if err != nil {
			t.Fatalf("maint wrote a record its readers refuse: %v", err)
		}
		return m
	}

	t.Run("enable a host, flags after the names, for a while", func(t *testing.T) {
		before := time.Now().Unix()
		code, stdout, stderr := runCmd(t, "maint", "enable", "h1", "-reason", "kernel upgrade", "-for", "90m")
		if code != exitOK {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		m := read("h1", "")
		if m == nil || m.Reason != "kernel upgrade" || !strings.HasPrefix(m.Who, "alice@") || m.Until < before+5400 || m.Until > time.Now().Unix()+5401 {
			t.Fatalf("record %+v, want the reason, alice@..., until in 90m", m)
		}
		for _, w := range []string{"maintenance on for host h1", `"kernel upgrade" by alice@`, "until 20", "rollcall maint disable h1"} {
			if !strings.Contains(stdout, w) {
				t.Errorf("stdout lacks %q:\n%s", w, stdout)
			}
		}
	})
	t.Run("enable again replaces, says what", func(t *testing.T) {
		code, stdout, _ := runCmd(t, "maint", "enable", "-reason", "kernel upgrade, take two", "-who", "bob", "h1")
		if code != exitOK || !strings.Contains(stdout, `(replaced: "kernel upgrade" by alice@`) {
			t.Errorf("exit %d, stdout:\n%s", code, stdout)
		}
		if m := read("h1", ""); m == nil || m.Who != "bob" || m.Until != 0 {
			t.Errorf("record %+v, want bob's, no end", m)
		}
	})
	t.Run("an instance; an unknown one is noted", func(t *testing.T) {
		code, stdout, stderr := runCmd(t, "maint", "enable", "h1", "web", "-reason", "disk swap")
		if code != exitOK || !strings.Contains(stdout, "maintenance on for web on h1") || strings.Contains(stderr, "note:") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		code, _, stderr = runCmd(t, "maint", "enable", "h9", "db", "-reason", "typo?")
		if code != exitOK || !strings.Contains(stderr, "note: nothing of db on h9 is registered now") {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
	})
	t.Run("ls and status show it", func(t *testing.T) {
		code, stdout, _ := runCmd(t, "maint", "ls")
		for _, w := range []string{"MAINTENANCE HOST", "(whole host)", "kernel upgrade, take two", "disk swap", "until disabled"} {
			if !strings.Contains(stdout, w) {
				t.Errorf("maint ls lacks %q (exit %d):\n%s", w, code, stdout)
			}
		}
		_, stdout, _ = runCmd(t, "maint", "ls", "-o", "json")
		var mv inspect.MaintView
		if err := json.Unmarshal([]byte(stdout), &mv); err != nil || len(mv.Maintenance) != 3 {
			t.Errorf("maint ls -o json: %v, %d records, want 3\n%s", err, len(mv.Maintenance), stdout)
		}
		_, stdout, _ = runCmd(t, "ls")
		if !strings.Contains(stdout, "STATE") || !strings.Contains(stdout, "maintenance") {
			t.Errorf("ls does not show the maintenance:\n%s", stdout)
		}
		_, stdout, _ = runCmd(t, "status")
		for _, w := range []string{"h1 (maintenance)", "disk swap (maintenance of web on h1, by alice@", "1 maintenance"} {
			if !strings.Contains(stdout, w) {
				t.Errorf("status lacks %q:\n%s", w, stdout)
			}
		}
	})
	t.Run("disable says what still holds it", func(t *testing.T) {
		code, stdout, _ := runCmd(t, "maint", "disable", "h1")
		if code != exitOK || !strings.Contains(stdout, "maintenance off for host h1") || !strings.Contains(stdout, "web on h1 is still in maintenance of its own: rollcall maint disable h1 web") {
			t.Errorf("exit %d, stdout:\n%s", code, stdout)
		}
		if read("h1", "") != nil {
			t.Errorf("host record still there")
		}
		code, stdout, _ = runCmd(t, "maint", "disable", "h1", "web")
		if code != exitOK || !strings.Contains(stdout, `maintenance off for web on h1 (was: "disk swap" by alice@`) || strings.Contains(stdout, "still") {
			t.Errorf("exit %d, stdout:\n%s", code, stdout)
		}
		code, stdout, _ = runCmd(t, "maint", "disable", "h1", "web")
		if code != exitOK || !strings.Contains(stdout, "was not in maintenance") {
			t.Errorf("disable twice: exit %d, stdout:\n%s", code, stdout)
		}
	})
}
