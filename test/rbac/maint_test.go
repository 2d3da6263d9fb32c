package rbac

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestMaintenanceIsOperatorsOnly applies the plan to a real etcd with
// client certificates and auth on: a host's credentials may neither write
// nor delete a maintenance record, its own host's included, and `rollcall
// maint` (the binary) succeeds with root's credentials and, with a host's,
// fails saying it needs admin credentials.
func TestMaintenanceIsOperatorsOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	plan, err := NewPlan(keys, []Host{{Name: "host-a", Elections: []string{"web"}}})
	if err != nil {
		t.Fatal(err)
	}
	e, tlsFiles, root := testkit.StartAuthEtcd(ctx, t, func(ctx context.Context, root *clientv3.Client) error {
		return Apply(ctx, root, plan, nil)
	})
	hostCert, hostKey := tlsFiles.Issue(t, "host-a", "host-a", false)
	host, err := etcdconn.New(etcdconn.Config{Endpoints: e.Endpoints(), Cert: hostCert, Key: hostKey, CA: tlsFiles.CA})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	if _, err := root.Put(ctx, keys.Instance("host-a", "web"), `{"service":"web","host":"host-a"}`); err != nil {
		t.Fatal(err)
	}

	for _, key := range []string{keys.Maintenance("host-a", ""), keys.Maintenance("host-a", "web"), keys.Maintenance("host-b", "")} {
		t.Run("the host may not write "+key, func(t *testing.T) {
			if _, err := host.Put(ctx, key, `{"reason":"self-service"}`); !isDenied(err) {
				t.Fatalf("put %s as host-a: %v, want permission denied", key, err)
			}
			if _, err := host.Delete(ctx, key); !isDenied(err) {
				t.Fatalf("delete %s as host-a: %v, want permission denied", key, err)
			}
		})
	}
	t.Run("the host may read maintenance (its agent and DNS do)", func(t *testing.T) {
		if _, err := root.Put(ctx, keys.Maintenance("host-a", ""), `{"reason":"root wrote it"}`); err != nil {
			t.Fatal(err)
		}
		r, err := host.Get(ctx, keys.MaintenanceDir(), clientv3.WithPrefix())
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("get %s as host-a: %v, %d keys", keys.MaintenanceDir(), err, len(r.Kvs))
		}
		if _, err := root.Delete(ctx, keys.Maintenance("host-a", "")); err != nil {
			t.Fatal(err)
		}
	})

	maint := func(cert, key string, args ...string) (int, string) {
		t.Helper()
		full := append(append([]string{"maint"}, args...), "-endpoints", e.ClientURL, "-cert", cert, "-key", key, "-cacert", tlsFiles.CA, "-timeout", "10s")
		out, err := testkit.Cmd(t, "rollcall", full...).CombinedOutput()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &exit):
			return exit.ExitCode(), string(out)
		}
		t.Fatalf("rollcall %v: %v\n%s", full, err, out)
		return 0, ""
	}
	t.Run("rollcall maint as root", func(t *testing.T) {
		code, out := maint(tlsFiles.ClientCert, tlsFiles.ClientKey, "enable", "host-a", "web", "-reason", "disk swap", "-who", "ops")
		if code != 0 || !strings.Contains(out, "maintenance on for web on host-a") {
			t.Fatalf("enable as root: exit %d\n%s", code, out)
		}
		r, err := root.Get(ctx, keys.Maintenance("host-a", "web"))
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("record after enable: %v %v", err, r)
		}
		m, err := registry.DecodeMaintenance(registry.Key{Kind: registry.KindMaintenance, Host: "host-a", Service: "web"}, r.Kvs[0].Value)
		if err != nil || m.Reason != "disk swap" || m.Who != "ops" {
			t.Fatalf("record %+v, %v", m, err)
		}
	})
	t.Run("rollcall maint as the host is refused, and says why", func(t *testing.T) {
		for _, args := range [][]string{
			{"enable", "host-a", "-reason", "self-service"},
			{"disable", "host-a", "web"},
		} {
			code, out := maint(hostCert, hostKey, args...)
			if code != 1 {
				t.Errorf("%v as host-a: exit %d, want 1\n%s", args, code, out)
			}
			for _, want := range []string{"etcd refused the write", "may not write " + keys.MaintenanceDir(), "admin credentials", "hosts cannot"} {
				if !strings.Contains(out, want) {
					t.Errorf("%v as host-a: output lacks %q:\n%s", args, want, out)
				}
			}
		}
		if r, err := root.Get(ctx, keys.Maintenance("host-a", "web")); err != nil || len(r.Kvs) != 1 {
			t.Errorf("the host's refused disable removed the record: %v %v", err, r)
		}
	})
	t.Run("rollcall maint disable as root", func(t *testing.T) {
		code, out := maint(tlsFiles.ClientCert, tlsFiles.ClientKey, "disable", "host-a", "web")
		if code != 0 || !strings.Contains(out, "maintenance off for web on host-a") {
			t.Fatalf("disable as root: exit %d\n%s", code, out)
		}
	})
}
