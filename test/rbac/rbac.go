// Package rbac is rollcall's etcd access-control layout (docs/DESIGN.md,
// "Keys": keys are host-first so that each host may write its own
// subtree only). Plan computes the roles and users from the hosts and the
// services whose elections they join; Apply creates them through the etcd
// auth API; Etcdctl spells the same plan as etcdctl command lines, which is
// what deploy/rbac.sh runs (a test keeps the two equal).
//
// Under prefix P the plan is:
//
//	role rollcall-reader          read       P/                  (everything)
//	role rollcall-host-<host>     readwrite  P/hosts/<host>/     (its records)
//	                              readwrite  P/elections/<svc>/  (each service it campaigns for)
//	user <host>                   roles rollcall-host-<host>, rollcall-reader
//	user rollcall-dns             role  rollcall-reader          (the CoreDNS plugin)
//
// No role grants writes to P/maintenance/: maintenance records are an
// operator's decision (`rollcall maint`, run with root's credentials), and a
// host must not be able to put itself, or another host, in or out of it. The
// reader role lets everyone read them.
//
// Users have no password: with client-certificate auth, etcd takes the user
// name from the certificate's common name, so host1's agent presents a
// certificate with CN=host1 (deploy/certs.md).
//
// etcd grants by key range, and election candidates are keyed by lease, not by
// host, so every host that campaigns for a service may write (and delete) any
// candidate key of that service: RBAC confines a host to its own services'
// elections, not to its own candidacy.
//
// It is test support: no binary imports it. In production deploy/rbac.sh
// creates the plan; the tests (servicereg's, test/security, test/e2e) apply
// it with Apply, and this package's test keeps the script and the plan equal.
package rbac

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
)

// Names of the shared roles and users.
const (
	ReaderRole     = "rollcall-reader"
	HostRolePrefix = "rollcall-host-"
	DNSUser        = "rollcall-dns"
)

// Permission types, as etcdctl spells them.
const (
	Read      = "read"
	ReadWrite = "readwrite"
)

// Perm grants Type on every key starting with Prefix.
type Perm struct {
	Type   string
	Prefix string
}

// Role is a named set of permissions.
type Role struct {
	Name  string
	Perms []Perm
}

// User is an etcd user and the roles it holds.
type User struct {
	Name  string
	Roles []string
}

// Host is one host of the cluster and the services whose master elections
// its agent joins (those with master_election in its config).
type Host struct {
	Name      string
	Elections []string
}

// Plan is the whole RBAC set-up: roles first, then users.
type Plan struct {
	Roles []Role
	Users []User
}

// NewPlan returns the plan for hosts under keys. Host and service names must
// be valid registry names, since they become key prefixes; hosts are sorted
// and each host's services deduplicated, so the plan does not depend on the
// order they were given in.
func NewPlan(keys registry.Keys, hosts []Host) (Plan, error) {
	p := Plan{Roles: []Role{{Name: ReaderRole, Perms: []Perm{{Type: Read, Prefix: keys.All()}}}}}
	sorted := append([]Host(nil), hosts...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	seen := map[string]bool{}
	for _, h := range sorted {
		if err := registry.CheckName("host", h.Name); err != nil {
			return Plan{}, err
		}
		if seen[h.Name] {
			return Plan{}, fmt.Errorf("host %s is listed twice", h.Name)
		}
		if h.Name == DNSUser {
			return Plan{}, fmt.Errorf("host name %s is the DNS server's user: rename the host", h.Name)
		}
		seen[h.Name] = true
		role := Role{Name: HostRolePrefix + h.Name, Perms: []Perm{{Type: ReadWrite, Prefix: keys.HostDir(h.Name)}}}
		svcs := append([]string(nil), h.Elections...)
		sort.Strings(svcs)
		for i, svc := range svcs {
			if err := registry.CheckName("service", svc); err != nil {
				return Plan{}, fmt.Errorf("host %s: %w", h.Name, err)
			}
			if i > 0 && svcs[i-1] == svc {
				continue
			}
			// The trailing slash keeps service "web" out of "web2"'s election.
			role.Perms = append(role.Perms, Perm{Type: ReadWrite, Prefix: keys.Election(svc) + "/"})
		}
		p.Roles = append(p.Roles, role)
		p.Users = append(p.Users, User{Name: h.Name, Roles: []string{role.Name, ReaderRole}})
	}
	p.Users = append(p.Users, User{Name: DNSUser, Roles: []string{ReaderRole}})
	return p, nil
}

// Etcdctl spells the plan as etcdctl argument lists, one command each, in
// the order they must run.
func (p Plan) Etcdctl() [][]string {
	var cmds [][]string
	for _, r := range p.Roles {
		cmds = append(cmds, []string{"role", "add", r.Name})
		for _, pm := range r.Perms {
			cmds = append(cmds, []string{"role", "grant-permission", "--prefix=true", r.Name, pm.Type, pm.Prefix})
		}
	}
	for _, u := range p.Users {
		cmds = append(cmds, []string{"user", "add", "--no-password", u.Name})
		for _, r := range u.Roles {
			cmds = append(cmds, []string{"user", "grant-role", u.Name, r})
		}
	}
	return cmds
}

// Apply creates the plan's roles and users in etcd through cli, which must
// act as root once auth is enabled. It may be run again: roles and users that
// exist are kept, and permissions and roles are granted again (etcd makes
// that a no-op). Users get no password (certificate auth); password, when
// not nil, gives a user a password instead (it returns "" for none).
func Apply(ctx context.Context, cli *clientv3.Client, p Plan, password func(user string) string) error {
	for _, r := range p.Roles {
		if _, err := cli.RoleAdd(ctx, r.Name); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return fmt.Errorf("add role %s: %w", r.Name, err)
		}
		for _, pm := range r.Perms {
			typ, err := clientv3.StrToPermissionType(pm.Type)
			if err != nil {
				return fmt.Errorf("role %s: %w", r.Name, err)
			}
			if _, err := cli.RoleGrantPermission(ctx, r.Name, pm.Prefix, clientv3.GetPrefixRangeEnd(pm.Prefix), typ); err != nil {
				return fmt.Errorf("grant %s on %s to role %s: %w", pm.Type, pm.Prefix, r.Name, err)
			}
		}
	}
	for _, u := range p.Users {
		pw := ""
		if password != nil {
			pw = password(u.Name)
		}
		_, err := cli.UserAddWithOptions(ctx, u.Name, pw, &clientv3.UserAddOptions{NoPassword: pw == ""})
		if err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
			return fmt.Errorf("add user %s: %w", u.Name, err)
		}
		for _, r := range u.Roles {
			if _, err := cli.UserGrantRole(ctx, u.Name, r); err != nil {
				return fmt.Errorf("grant role %s to user %s: %w", r, u.Name, err)
			}
		}
	}
	return nil
}
