package testkit

import (
	"context"
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
	s.WriteUnit("tk.service", SleepUnit)
	s.Systemctl("start", "tk.service")
	out, _ := s.TrySystemctl("is-active", "tk.service")
	if strings.TrimSpace(out) != "active" {
		t.Fatalf("is-active: %q", out)
	}
	s.Systemctl("stop", "tk.service")
}
