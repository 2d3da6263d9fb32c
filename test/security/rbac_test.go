package security

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/election"
	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/test/rbac"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestRBACHostConfined runs etcd with client-certificate auth and the roles
// of test/rbac (what deploy/rbac.sh creates). Host A's agent (the real
// servicereg binary, on a real systemd user manager, as etcd user host-a)
// registers under /rollcall/hosts/host-a/ and campaigns in its service's
// election. An etcd client with A's certificate is refused host B's keys and
// other elections. An agent whose config claims host-b while it holds A's
// certificate is refused every write and says so: an error log line with the
// key and the fix, the write_denied metric, /healthz failing with the key;
// it keeps running and retrying (no silent crash loop), and nothing appears
// under host-b.
func TestRBACHostConfined(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	plan, err := rbac.NewPlan(keys, []rbac.Host{{Name: "host-a", Elections: []string{"web"}}, {Name: "host-b", Elections: []string{"db"}}})
	if err != nil {
		t.Fatal(err)
	}
	e, pki, root := testkit.StartAuthEtcd(ctx, t, func(ctx context.Context, root *clientv3.Client) error {
		return rbac.Apply(ctx, root, plan, nil)
	})
	aCert, aKey := pki.Issue(t, "host-a", "host-a", false)

	sd := testkit.StartSystemd(t)
	sd.WriteUnit(unit("web"), testkit.SleepUnit)
	sd.WriteUnit(unit("db"), testkit.SleepUnit)
	sd.Systemctl("start", unit("web"), unit("db"))

	config := func(host, svc string, election bool) string {
		return fmt.Sprintf(`host: %s
etcd:
  endpoints: [%q]
  cert: %s
  key: %s
  ca: %s
ttl: 5s
systemd: user
addrs:
  public: ["192.0.2.10"]
services:
  - name: %s
    unit: %s
    master_election: %v
`, host, e.ClientURL, aCert, aKey, pki.CA, svc, unit(svc), election)
	}

	a := startAgent(t, sd, config("host-a", "web", true))
	testkit.Eventually(t, wait, "host-a's agent never registered web as host-a", func() bool {
		return testkit.Count(t, root, keys.Instance("host-a", "web")) == 1 && testkit.Count(t, root, keys.Host("host-a")) == 1
	})
	testkit.Eventually(t, wait, "host-a's agent never became web's master", func() bool {
		l, err := election.CurrentLeader(ctx, root, keys, "web")
		return err == nil && l.Host == "host-a" && a.metric(`rollcall_servicereg_master{service="web"}`) == "1"
	})
	testkit.Eventually(t, wait, "host-a's /healthz never said ok", func() bool {
		code, _ := a.healthz()
		return code == http.StatusOK
	})

	t.Run("an etcd client with host-a's certificate", func(t *testing.T) {
		cli, err := etcdconn.New(etcdconn.Config{Endpoints: e.Endpoints(), Cert: aCert, Key: aKey, CA: pki.CA})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		tests := []struct {
			name    string
			key     string
			allowed bool
		}{
			{name: "writes in its own subtree", key: keys.HostDir("host-a") + "probe", allowed: true},
			{name: "writes its service's election", key: keys.Election("web") + "/probe", allowed: true},
			{name: "is refused host-b's record", key: keys.Host("host-b")},
			{name: "is refused host-b's instance", key: keys.Instance("host-b", "db")},
			{name: "is refused a host whose name extends its own", key: keys.Host("host-a2")},
			{name: "is refused host-b's election", key: keys.Election("db") + "/probe"},
			{name: "is refused the prefix itself", key: keys.All() + "probe"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				_, err := cli.Put(cctx, tc.key, "x")
				switch {
				case tc.allowed && err != nil:
					t.Errorf("put %s: %v, want it allowed", tc.key, err)
				case !tc.allowed && !errors.Is(err, rpctypes.ErrPermissionDenied):
					t.Errorf("put %s: %v, want permission denied", tc.key, err)
				}
				if tc.allowed {
					if _, err := cli.Delete(cctx, tc.key); err != nil {
						t.Errorf("delete %s: %v", tc.key, err)
					}
				}
			})
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := cli.Delete(cctx, keys.HostDir("host-b"), clientv3.WithPrefix()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("delete host-b's subtree: %v, want permission denied", err)
		}
	})

	t.Run("an agent claiming host-b with host-a's certificate", func(t *testing.T) {
		b := startAgent(t, sd, config("host-b", "db", false))
		// Six refusals: with the backoff doubling from 100ms they span
		// 3.1s, more than a keepalive interval (TTL/3), so /healthz must
		// stay failing while keepalives go through.
		testkit.Eventually(t, wait, "the agent never counted six refused writes", func() bool {
			v, _ := strconv.ParseFloat(b.metric(`rollcall_servicereg_permission_denied_total{op="write"}`), 64)
			return v >= 6
		})
		if v := b.metric("rollcall_servicereg_write_denied"); v != "1" {
			t.Errorf("rollcall_servicereg_write_denied = %q, want 1", v)
		}
		if v := b.metric(`rollcall_servicereg_etcd_errors_total{op="write"}`); v == "" || v == "0" {
			t.Errorf("rollcall_servicereg_etcd_errors_total{op=write} = %q, want counted", v)
		}
		code, body := b.healthz()
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "permission denied") || !strings.Contains(body, keys.Host("host-b")) {
			t.Errorf("/healthz = %d %q; want 503 naming permission denied on %s", code, body, keys.Host("host-b"))
		}
		out := b.Out.String()
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "permission denied") && strings.Contains(l, "level=ERROR") {
				line = l
				break
			}
		}
		for _, want := range []string{"key=" + keys.Host("host-b"), "host=host-b", "fix=", "CN of " + aCert, "deploy/rbac.sh host-b"} {
			if !strings.Contains(line, want) {
				t.Errorf("the agent's permission-denied error line %q lacks %q; log:\n%s", line, want, out)
			}
		}
		if n := strings.Count(out, "permission denied;"); n != 1 {
			t.Errorf("the refusal was logged %d times, want once per state change; log:\n%s", n, out)
		}
		if b.Exited() {
			t.Errorf("the agent exited: %v\n%s", b.Err(), out)
		}
		if n := testkit.Count(t, root, keys.HostDir("host-b")); n != 0 {
			t.Errorf("%d keys under %s, want none", n, keys.HostDir("host-b"))
		}
		// host-a is untouched by its impostor.
		if testkit.Count(t, root, keys.Instance("host-a", "web")) != 1 {
			t.Error("host-a's instance is gone")
		}
		if code, body := a.healthz(); code != http.StatusOK {
			t.Errorf("host-a's /healthz = %d %q while the impostor runs", code, body)
		}
		if err := b.stop(); err != nil {
			t.Errorf("SIGTERM: the agent exited with %v, want a clean exit\n%s", err, b.Out.String())
		}
	})
}
