package servicereg

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/rbac"
	"github.com/rollcall/rollcall/test/testkit"
)

func TestDeniedFix(t *testing.T) {
	keys := registry.MustKeys("/rollcall")
	tests := []struct {
		name, host, key, cert string
		want                  []string
	}{
		{name: "another host's subtree", host: "b", key: "/rollcall/hosts/b/host", cert: "/etc/servicereg/a.pem",
			want: []string{"the CN of /etc/servicereg/a.pem", "host b's keys", "set host:", "CN=b", "deploy/rbac.sh b"}},
		{name: "an election not granted", host: "a", key: "/rollcall/elections/web/1f",
			want: []string{"may not campaign for web", "a:web"}},
		{name: "a key elsewhere", host: "a", key: "/rollcall/other",
			want: []string{"may not write /rollcall/other", "/rollcall/hosts/a/"}},
		{name: "no key known", host: "a",
			want: []string{"lacks a permission", "deploy/rbac.sh a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := deniedFix(keys, tc.host, tc.key, tc.cert)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("deniedFix = %q, want it to contain %q", got, w)
				}
			}
		})
	}
}

// TestAgentReportsDenied runs an agent whose config claims host-b while its
// certificate is host-a's, against etcd with RBAC on (test/rbac's plan):
// every write is refused. The agent says so once, with the key and the fix,
// counts it, keeps /healthz failing even while its keepalives go through,
// writes nothing under host-b, and heals without a restart once the grant is
// added.
func TestAgentReportsDenied(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys := registry.MustKeys("/rollcall")
	e, tlsFiles, root := startAuthEtcd(ctx, t, keys, []rbac.Host{{Name: "host-a"}, {Name: "host-b"}})

	cert, key := tlsFiles.Issue(t, "host-a", "host-a", false)
	var logs testkit.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := &Config{Host: "host-b", TTL: 3 * time.Second,
		Etcd:  EtcdConfig{Endpoints: e.Endpoints(), Cert: cert, Key: key, CA: tlsFiles.CA},
		Addrs: registry.Addrs{"public": {netip.MustParseAddr("192.0.2.2")}}}
	a, err := New(cfg, Options{Logger: log, NoSystemd: true, Static: []Service{{Name: "web"}}})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	defer startAgent(t, a)()

	// Five refusals, and 1.5s since the start, so that keepalives (TTL 3s:
	// one a second) went through between them: the jittered backoff may
	// crowd five refusals into less than half a second.
	testkit.Eventually(t, wait, "the agent never counted five refused writes", func() bool {
		v, _ := strconv.ParseFloat(metricValue(t, a, `rollcall_servicereg_permission_denied_total{op="write"}`), 64)
		return v >= 5 && time.Since(started) >= 1500*time.Millisecond
	})
	if v := metricValue(t, a, "rollcall_servicereg_write_denied"); v != "1" {
		t.Errorf("rollcall_servicereg_write_denied = %q, want 1", v)
	}
	code, body := healthz(a)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "permission denied") || !strings.Contains(body, keys.Host("host-b")) {
		t.Errorf("/healthz = %d %q, want 503 naming permission denied on %s", code, body, keys.Host("host-b"))
	}
	out := logs.String()
	if n := strings.Count(out, "etcd refused a write: permission denied"); n != 1 {
		t.Errorf("refusal logged %d times, want once (per state change):\n%s", n, out)
	}
	for _, w := range []string{"level=ERROR", "key=" + keys.Host("host-b"), "deploy/rbac.sh host-b", "CN of " + cert} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
	r, err := root.Get(ctx, keys.HostDir("host-b"), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || r.Count != 0 {
		t.Fatalf("keys under %s: %v (err %v), want none", keys.HostDir("host-b"), r, err)
	}

	// The operator grants host-a's user host-b's subtree: the agent heals.
	if _, err := root.RoleGrantPermission(ctx, rbac.HostRolePrefix+"host-a", keys.HostDir("host-b"),
		clientv3.GetPrefixRangeEnd(keys.HostDir("host-b")), clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Ready():
	case <-time.After(wait):
		t.Fatal("the agent did not register after the grant")
	}
	testkit.Eventually(t, wait, "/healthz never became ok after the grant", func() bool {
		code, _ := healthz(a)
		return code == http.StatusOK
	})
	if v := metricValue(t, a, "rollcall_servicereg_write_denied"); v != "0" {
		t.Errorf("rollcall_servicereg_write_denied = %q after the grant, want 0", v)
	}
	if !strings.Contains(logs.String(), "etcd accepts this agent's writes again") {
		t.Errorf("the recovery was not logged:\n%s", logs.String())
	}
}

// TestAgentExplainsTLSMismatch: an agent pointed at a TLS etcd with an
// http:// URL says in its log and /healthz which endpoint speaks TLS.
func TestAgentExplainsTLSMismatch(t *testing.T) {
	tlsFiles := testkit.NewTLS(t, "root")
	e := testkit.StartEtcd(t, testkit.WithTLS(tlsFiles))
	plain := "http://" + strings.TrimPrefix(e.ClientURL, "https://")
	var logs testkit.Buffer
	cfg := &Config{Host: "h1", Etcd: EtcdConfig{Endpoints: []string{plain}}}
	a, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), NoSystemd: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(ctx) })
	defer func() { stop(); wg.Wait() }()
	want := "etcd " + plain + " serves TLS"
	testkit.Eventually(t, wait, "the agent never said its endpoint speaks TLS", func() bool {
		_, body := healthz(a)
		return strings.Contains(body, want) && strings.Contains(logs.String(), want)
	})
	if code, _ := healthz(a); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz = %d, want 503", code)
	}
}

// TestAgentReportsCampaignDenied: an agent whose etcd user may write its own
// host's keys but not the election of a master_election service registers,
// and says once, at error level with the fix, that it cannot become master;
// every refused attempt is counted.
func TestAgentReportsCampaignDenied(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys := registry.MustKeys("/rollcall")
	// host-a may campaign for db only.
	e, tlsFiles, _ := startAuthEtcd(ctx, t, keys, []rbac.Host{{Name: "host-a", Elections: []string{"db"}}})
	cert, key := tlsFiles.Issue(t, "host-a", "host-a", false)
	var logs testkit.Buffer
	cfg := &Config{Host: "host-a", TTL: 3 * time.Second,
		Etcd:  EtcdConfig{Endpoints: e.Endpoints(), Cert: cert, Key: key, CA: tlsFiles.CA},
		Addrs: registry.Addrs{"public": {netip.MustParseAddr("192.0.2.1")}}}
	a, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), NoSystemd: true,
		Static: []Service{{Name: "web", MasterElection: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer startAgent(t, a)()

	select {
	case <-a.Ready():
	case <-time.After(wait):
		t.Fatalf("the agent did not register its own keys:\n%s", logs.String())
	}
	testkit.Eventually(t, wait, "the agent never counted two refused campaigns", func() bool {
		v, _ := strconv.ParseFloat(metricValue(t, a, `rollcall_servicereg_permission_denied_total{op="campaign"}`), 64)
		return v >= 2
	})
	out := logs.String()
	if n := strings.Count(out, "etcd refused the master campaign"); n != 1 {
		t.Errorf("refused campaign logged %d times, want once:\n%s", n, out)
	}
	for _, w := range []string{"level=ERROR", "key=" + keys.Election("web") + "/", "deploy/rbac.sh argument (host-a:web"} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q:\n%s", w, out)
		}
	}
	if v := metricValue(t, a, `rollcall_servicereg_master{service="web"}`); v != "0" {
		t.Errorf("master gauge %q, want 0", v)
	}
}

// startAuthEtcd starts etcd with certificates, auth and test/rbac's
// roles and users for hosts, and returns root's client.
func startAuthEtcd(ctx context.Context, t *testing.T, keys registry.Keys, hosts []rbac.Host) (*testkit.Etcd, *testkit.TLSFiles, *clientv3.Client) {
	t.Helper()
	plan, err := rbac.NewPlan(keys, hosts)
	if err != nil {
		t.Fatal(err)
	}
	return testkit.StartAuthEtcd(ctx, t, func(ctx context.Context, root *clientv3.Client) error {
		return rbac.Apply(ctx, root, plan, nil)
	})
}
