package inspect

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestLoad reads a registry from a real etcd: records on a lease get that
// lease's time left, a revoked lease's keys are gone, garbage is skipped.
func TestLoad(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	onLease := clientv3.WithLease(lease.ID)
	testkit.Put(t, cli, testKeys.Host("h1"), `{"name":"h1","addrs":{"public":["127.0.0.1"]}}`, onLease)
	testkit.Put(t, cli, testKeys.Instance("h1", "web"), `{"service":"web","host":"h1"}`, onLease)
	testkit.Put(t, cli, testKeys.Election("web")+"/"+LeaseHex(int64(lease.ID)), "h1", onLease)
	testkit.Put(t, cli, testKeys.All()+"junk", "x")

	s, err := Load(ctx, cli, testKeys)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Services) != 1 || len(s.Services[0].Instances) != 1 {
		t.Fatalf("services %+v, want web on h1", s.Services)
	}
	in := s.Services[0].Instances[0]
	if in.TTL == nil || *in.TTL <= 0 || *in.TTL > 60 || in.Role != "master" {
		t.Errorf("instance %+v: want a TTL in (0, 60] and role master", in)
	}
	if m := s.Services[0].Master; m == nil || m.Host != "h1" || m.Term <= 0 {
		t.Errorf("master %+v, want h1 with a term", m)
	}
	if len(s.Hosts) != 1 || s.Hosts[0].GrantedTTL != 60 {
		t.Errorf("hosts %+v, want h1 granted 60s", s.Hosts)
	}
	if len(s.Skipped) != 1 || s.Skipped[0].Key != "/rollcall/junk" {
		t.Errorf("skipped %+v, want /rollcall/junk", s.Skipped)
	}

	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	s, err = Load(ctx, cli, testKeys)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Counts(); c.Services != 0 || c.Hosts != 0 || c.Skipped != 1 {
		t.Errorf("after revoke: %s, want only the junk key", c)
	}
}
