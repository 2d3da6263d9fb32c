package testkit

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestEtcdStopStart(t *testing.T) {
	e := StartEtcd(t)
	cli := e.Client(t)
	Put(t, cli, "/k", "v")
	e.Stop()
	e.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, "/k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("after restart: %v %v", r, err)
	}
}

func TestClusterOfThree(t *testing.T) {
	c := StartCluster(t, 3)
	cli := c.Client(t)
	Put(t, cli, "/k", "v")
	if c.Leader() < 0 {
		t.Fatal("no leader")
	}
}

func TestEtcdTLS(t *testing.T) {
	f := NewTLS(t, "root")
	e := StartEtcd(t, WithTLS(f))
	Put(t, e.Client(t), "/k", "v")
}

func TestSystemdUnits(t *testing.T) {
	s := StartSystemd(t)
	u := UnitName("rctk", "tk")
	s.WriteUnit(u, SleepUnit)
	s.Systemctl("start", u)
	out, _ := s.TrySystemctl("is-active", u)
	if strings.TrimSpace(out) != "active" {
		t.Fatalf("is-active: %q", out)
	}
	s.Systemctl("stop", u)
}

// TestNewEtcdClose: the benchmark's form of StartEtcd serves, and Close
// stops the member and removes its data.
func TestNewEtcdClose(t *testing.T) {
	e, err := NewEtcd()
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			e.Close()
		}
	}()
	cli, err := e.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	Put(t, cli, "/k/1", "v")
	Put(t, cli, "/k/2", "v")
	if n := Count(t, cli, "/k/"); n != 2 || !Exists(t, cli, "/k/1") || Exists(t, cli, "/k/3") {
		t.Fatalf("Count /k/ = %d, Exists /k/1 = %v, Exists /k/3 = %v; want 2, true, false", n, Exists(t, cli, "/k/1"), Exists(t, cli, "/k/3"))
	}
	e.Close()
	closed = true
	if e.Server() != nil {
		t.Error("Server() after Close: want nil")
	}
	if _, err := os.Stat(e.Dir); !os.IsNotExist(err) {
		t.Errorf("data folder %s after Close: %v, want it gone", e.Dir, err)
	}
}

func TestUnitName(t *testing.T) {
	a, b := UnitName("rca", "web"), UnitName("rcb", "web")
	if a == b || !strings.HasPrefix(a, "web-rca") || !strings.HasSuffix(a, ".service") {
		t.Fatalf("UnitName: %q and %q, want web-rca<pid>.service and another", a, b)
	}
}
