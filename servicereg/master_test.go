package servicereg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/election"
	"github.com/rollcall/rollcall/test/testkit"
)

// hookArgv is a hook that appends "service host term" to path.
func hookArgv(path string) []string {
	return []string{"/bin/sh", "-c", `printf '%s %s %s\n' "$ROLLCALL_SERVICE" "$ROLLCALL_HOST" "$ROLLCALL_TERM" >> "$0"`, path}
}

// hookLines returns the lines a hookArgv hook wrote.
func hookLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(strings.ReplaceAll(string(b), " ", "_"))
}

// leader returns service's master, false when it has none; it fails the test
// when etcd does not answer, so that "no master left" is never concluded from
// a failed read.
func leader(t *testing.T, cli *clientv3.Client, service string) (election.Leader, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := election.CurrentLeader(ctx, cli, keys, service)
	if errors.Is(err, election.ErrNoLeader) {
		return election.Leader{}, false
	}
	if err != nil {
		t.Fatalf("leader of %s: %v", service, err)
	}
	return l, true
}

// masterGauge reads the agent's master metric for service (-1: not set).
func masterGauge(t *testing.T, a *Agent, service string) float64 {
	mfs, err := a.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "rollcall_servicereg_master" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" && l.GetValue() == service {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func TestMasterElectionHandover(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	dir := t.TempDir()

	agents := map[string]*Agent{}
	for _, host := range []string{"h1", "h2"} {
		u := unit("db" + host)
		sd.WriteUnit(u, testkit.SleepUnit)
		sd.Systemctl("start", u)
		cfg := userConfig(e, 10*time.Second, Service{Name: "db", Unit: u, MasterElection: true,
			OnMaster:  hookArgv(filepath.Join(dir, "master-"+host)),
			OnStandby: hookArgv(filepath.Join(dir, "standby-"+host))})
		cfg.Host = host
		a, err := New(cfg, Options{Logger: testLogger(t).With("agent", host)})
		if err != nil {
			t.Fatal(err)
		}
		runAgent(t, a)
		agents[host] = a
	}

	var first election.Leader
	testkit.Eventually(t, wait, "one master elected", func() bool {
		l, ok := leader(t, cli, "db")
		first = l
		return ok
	})
	other := map[string]string{"h1": "h2", "h2": "h1"}[first.Host]
	if other == "" {
		t.Fatalf("leader %+v is neither h1 nor h2", first)
	}
	want := fmt.Sprintf("db_%s_%d", first.Host, first.Term)
	testkit.Eventually(t, wait, "on_master ran on the master with its env", func() bool {
		lines := hookLines(filepath.Join(dir, "master-"+first.Host))
		return len(lines) == 1 && lines[0] == want
	})
	testkit.Eventually(t, wait, "master gauges 1 and 0", func() bool {
		return masterGauge(t, agents[first.Host], "db") == 1 && masterGauge(t, agents[other], "db") == 0
	})
	if lines := hookLines(filepath.Join(dir, "master-"+other)); len(lines) != 0 {
		t.Fatalf("the standby ran on_master: %v", lines)
	}

	// Stopping the master's unit hands over to the other host, with a larger term.
	sd.Systemctl("stop", unit("db"+first.Host))
	var second election.Leader
	testkit.Eventually(t, wait, "the other host took over", func() bool {
		l, ok := leader(t, cli, "db")
		second = l
		return ok && l.Host == other
	})
	if second.Term <= first.Term {
		t.Fatalf("new term %d is not larger than the old %d", second.Term, first.Term)
	}
	want2 := fmt.Sprintf("db_%s_%d", other, second.Term)
	testkit.Eventually(t, wait, "on_master ran on the new master", func() bool {
		lines := hookLines(filepath.Join(dir, "master-"+other))
		return len(lines) == 1 && lines[0] == want2
	})
	testkit.Eventually(t, wait, "on_standby ran on the old master", func() bool {
		lines := hookLines(filepath.Join(dir, "standby-"+first.Host))
		return len(lines) == 1 && lines[0] == want
	})
	testkit.Eventually(t, wait, "gauges follow the handover", func() bool {
		return masterGauge(t, agents[first.Host], "db") == 0 && masterGauge(t, agents[other], "db") == 1
	})

	// The unit back: the old master campaigns again but stays standby.
	sd.Systemctl("start", unit("db"+first.Host))
	testkit.Eventually(t, wait, "the old master is a candidate again", func() bool {
		return testkit.Count(t, cli, keys.Election("db")+"/") == 2
	})
	if l, ok := leader(t, cli, "db"); !ok || l != second {
		t.Fatalf("leader %+v after the old master came back, want %+v", l, second)
	}
}

func TestMasterElectionLeaseLoss(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)

	u := unit("dbl")
	sd.WriteUnit(u, testkit.SleepUnit)
	sd.Systemctl("start", u)
	a, err := New(userConfig(e, 10*time.Second, Service{Name: "db", Unit: u, MasterElection: true}),
		Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stop := runAgent(t, a)
	var first election.Leader
	testkit.Eventually(t, wait, "master elected", func() bool {
		l, ok := leader(t, cli, "db")
		first = l
		return ok && l.Host == "h1"
	})
	_, lease, _ := get(t, cli, first.Key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, wait, "master again on the new lease with a larger term", func() bool {
		l, ok := leader(t, cli, "db")
		return ok && l.Host == "h1" && l.Term > first.Term && l.Key != first.Key
	})

	// Stopping the agent resigns (the lease is revoked too): no master left.
	stop()
	if l, ok := leader(t, cli, "db"); ok {
		t.Fatalf("leader %+v after the agent stopped", l)
	}
}

func TestMasterHookFailureReported(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		wantErr bool
		wantOut string
	}{
		{name: "ok", argv: []string{"/bin/sh", "-c", `echo "$ROLLCALL_SERVICE $ROLLCALL_HOST $ROLLCALL_TERM"`}, wantOut: "db h1 7\n"},
		{name: "fails with output", argv: []string{"/bin/sh", "-c", "echo oops; exit 3"}, wantErr: true, wantOut: "oops\n"},
		{name: "no such command", argv: []string{"/nonexistent/hook"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runMasterHook(context.Background(), tt.argv, "db", "h1", 7)
			if (err != nil) != tt.wantErr || out != tt.wantOut {
				t.Fatalf("runMasterHook = %q, %v; want output %q, error %v", out, err, tt.wantOut, tt.wantErr)
			}
		})
	}
}

// A master whose lease lapses (etcd down for a whole TTL) steps down, since
// the lease may be gone and another host master; when etcd comes back having
// kept the lease, it campaigns again on that same lease.
func TestMasterStepsDownOnLapse(t *testing.T) {
	c := testkit.StartCluster(t, 3)
	cli := c.Client(t)
	cfg := &Config{Host: "h1", Etcd: EtcdConfig{Endpoints: c.Endpoints()}, TTL: 5 * time.Second}
	a, err := New(cfg, Options{Logger: testLogger(t), NoSystemd: true, Static: []Service{{Name: "db", MasterElection: true}}})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	var first election.Leader
	testkit.Eventually(t, wait, "master elected", func() bool {
		l, ok := leader(t, cli, "db")
		first = l
		return ok && l.Host == "h1" && masterGauge(t, a, "db") == 1
	})
	_, lease, _ := get(t, cli, first.Key)

	for _, m := range c.Members {
		m.Stop()
	}
	testkit.Eventually(t, wait, "standby while the lease is in doubt", func() bool {
		return masterGauge(t, a, "db") == 0
	})
	testkit.StartTogether(t, c.Members...)
	testkit.Eventually(t, wait, "master again on the same lease", func() bool {
		l, ok := leader(t, cli, "db")
		if !ok || l.Host != "h1" || masterGauge(t, a, "db") != 1 {
			return false
		}
		_, l2, ok := get(t, cli, l.Key)
		return ok && l2 == lease
	})
}
