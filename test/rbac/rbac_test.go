package rbac

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

var keys = registry.MustKeys("/rollcall")

func TestNewPlan(t *testing.T) {
	tests := []struct {
		name    string
		hosts   []Host
		want    Plan
		wantErr string
	}{
		{
			name:  "hosts sorted, services sorted and deduplicated",
			hosts: []Host{{Name: "h2", Elections: []string{"web", "db", "web"}}, {Name: "h1"}},
			want: Plan{
				Roles: []Role{
					{Name: "rollcall-reader", Perms: []Perm{{Type: Read, Prefix: "/rollcall/"}}},
					{Name: "rollcall-host-h1", Perms: []Perm{{Type: ReadWrite, Prefix: "/rollcall/hosts/h1/"}}},
					{Name: "rollcall-host-h2", Perms: []Perm{
						{Type: ReadWrite, Prefix: "/rollcall/hosts/h2/"},
						{Type: ReadWrite, Prefix: "/rollcall/elections/db/"},
						{Type: ReadWrite, Prefix: "/rollcall/elections/web/"},
					}},
				},
				Users: []User{
					{Name: "h1", Roles: []string{"rollcall-host-h1", "rollcall-reader"}},
					{Name: "h2", Roles: []string{"rollcall-host-h2", "rollcall-reader"}},
					{Name: "rollcall-dns", Roles: []string{"rollcall-reader"}},
				},
			},
		},
		{name: "bad host name", hosts: []Host{{Name: "Host_1"}}, wantErr: "host name"},
		{name: "bad service name", hosts: []Host{{Name: "h1", Elections: []string{"a/b"}}}, wantErr: "service name"},
		{name: "host twice", hosts: []Host{{Name: "h1"}, {Name: "h1"}}, wantErr: "twice"},
		{name: "host named like the DNS user", hosts: []Host{{Name: DNSUser}}, wantErr: "DNS server's user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NewPlan(keys, tc.hosts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestScriptMatchesPlan keeps deploy/rbac.sh and the Go plan equal: the
// script's dry run (-n) must print exactly the plan's etcdctl commands.
func TestScriptMatchesPlan(t *testing.T) {
	script := filepath.Join(testkit.RepoRoot(t), "deploy", "rbac.sh")
	tests := []struct {
		name  string
		args  []string
		hosts []Host
	}{
		{name: "one host", args: []string{"host1"}, hosts: []Host{{Name: "host1"}}},
		{
			name:  "three hosts, unsorted, with elections",
			args:  []string{"host3", "host2:web,db,web", "host1:web"},
			hosts: []Host{{Name: "host3"}, {Name: "host2", Elections: []string{"web", "db"}}, {Name: "host1", Elections: []string{"web"}}},
		},
		{
			name:  "a name that is a prefix of another",
			args:  []string{"a1", "a:x"},
			hosts: []Host{{Name: "a1"}, {Name: "a", Elections: []string{"x"}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := NewPlan(keys, tc.hosts)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, c := range plan.Etcdctl() {
				want = append(want, "etcdctl "+strings.Join(c, " "))
			}
			out, err := exec.Command("sh", append([]string{script, "-n"}, tc.args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("rbac.sh -n: %v\n%s", err, out)
			}
			got := strings.Split(strings.TrimSpace(string(out)), "\n")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rbac.sh -n %v printed:\n%s\nthe Go plan is:\n%s", tc.args, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}

	t.Run("bad host name is refused", func(t *testing.T) {
		out, err := exec.Command("sh", script, "-n", "Bad_Host").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "lower-case DNS label") {
			t.Fatalf("rbac.sh -n Bad_Host: err %v, output %s; want a refusal that says why", err, out)
		}
	})
}

// TestApplyConfinesHosts applies the plan to a real etcd with client
// certificates and auth enabled, then acts as each host: host-a writes its
// own subtree and its service's election, and is refused host-b's subtree and
// the election of a service it does not run.
func TestApplyConfinesHosts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	plan, err := NewPlan(keys, []Host{{Name: "host-a", Elections: []string{"web"}}, {Name: "host-b", Elections: []string{"db"}}})
	if err != nil {
		t.Fatal(err)
	}
	e, tlsFiles, root := testkit.StartAuthEtcd(ctx, t, func(ctx context.Context, root *clientv3.Client) error {
		return Apply(ctx, root, plan, nil)
	})
	// Applying again, now as root under auth, changes nothing and fails not.
	if err := Apply(ctx, root, plan, nil); err != nil {
		t.Fatalf("apply again: %v", err)
	}

	as := func(user string) *clientv3.Client {
		cert, key := tlsFiles.Issue(t, user, user, false)
		cli, err := etcdconn.New(etcdconn.Config{Endpoints: e.Endpoints(), Cert: cert, Key: key, CA: tlsFiles.CA})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		return cli
	}
	a, dnsUser, stranger := as("host-a"), as(DNSUser), as("host-z")

	tests := []struct {
		name    string
		cli     *clientv3.Client
		key     string
		allowed bool
	}{
		{name: "host-a writes its host record", cli: a, key: keys.Host("host-a"), allowed: true},
		{name: "host-a writes its instance", cli: a, key: keys.Instance("host-a", "web"), allowed: true},
		{name: "host-a writes its service's election", cli: a, key: keys.Election("web") + "/1f", allowed: true},
		{name: "host-a is refused host-b's record", cli: a, key: keys.Host("host-b"), allowed: false},
		{name: "host-a is refused host-b's instance", cli: a, key: keys.Instance("host-b", "db"), allowed: false},
		{name: "host-a is refused a host whose name extends its own", cli: a, key: keys.Host("host-a2"), allowed: false},
		{name: "host-a is refused another service's election", cli: a, key: keys.Election("db") + "/1f", allowed: false},
		{name: "host-a is refused an election whose name extends its own", cli: a, key: keys.Election("web2") + "/1f", allowed: false},
		{name: "host-a is refused keys outside its subtree", cli: a, key: keys.All() + "other", allowed: false},
		{name: "the DNS user writes nothing", cli: dnsUser, key: keys.Host("host-a"), allowed: false},
		{name: "a host without a user writes nothing", cli: stranger, key: keys.Host("host-z"), allowed: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cli.Put(ctx, tc.key, "x")
			switch {
			case tc.allowed && err != nil:
				t.Fatalf("put %s: %v, want it allowed", tc.key, err)
			case !tc.allowed && err == nil:
				t.Fatalf("put %s succeeded, want permission denied", tc.key)
			case !tc.allowed && !isDenied(err):
				t.Fatalf("put %s: %v, want permission denied", tc.key, err)
			}
		})
	}

	t.Run("readers read everything", func(t *testing.T) {
		for _, cli := range []*clientv3.Client{a, dnsUser} {
			r, err := cli.Get(ctx, keys.All(), clientv3.WithPrefix())
			if err != nil {
				t.Fatalf("get %s: %v", keys.All(), err)
			}
			if len(r.Kvs) == 0 {
				t.Fatalf("get %s: no keys", keys.All())
			}
		}
	})

	t.Run("host-a campaigns, and revokes its lease with its keys", func(t *testing.T) {
		// The candidate key written above would lead the election: clear it.
		if _, err := a.Delete(ctx, keys.Election("web")+"/", clientv3.WithPrefix()); err != nil {
			t.Fatalf("delete web's candidates: %v", err)
		}
		lease, err := a.Grant(ctx, 30)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Put(ctx, keys.Host("host-a"), "y", clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
		s, err := concurrency.NewSession(a, concurrency.WithLease(lease.ID))
		if err != nil {
			t.Fatal(err)
		}
		el := concurrency.NewElection(s, keys.Election("web"))
		if err := el.Campaign(ctx, "host-a"); err != nil {
			t.Fatalf("campaign for web: %v", err)
		}
		if _, err := a.Revoke(ctx, lease.ID); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		s.Close()
	})
}

func isDenied(err error) bool {
	return errors.Is(err, rpctypes.ErrPermissionDenied) || errors.Is(err, rpctypes.ErrUserNotFound) ||
		strings.Contains(err.Error(), "permission denied") || strings.Contains(err.Error(), "user name not found")
}
