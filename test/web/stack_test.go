package web

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	_ "github.com/rollcall/rollcall/internal/corednsbuild"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// need returns the path of a binary from Debian's packages, or skips the
// test naming what is missing.
func need(t *testing.T, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("%s is not installed (Debian package %s): `make test` as root installs it, or apt-get install %s", bin, pkg, pkg)
	}
	return p
}

// stack is etcd and CoreDNS serving zone infra.example.com. with `http`
// on a free loopback port.
type stack struct {
	cli      *clientv3.Client
	keys     registry.Keys
	httpAddr string
}

func startStack(t *testing.T) *stack {
	t.Helper()
	e := testkit.StartEtcd(t)
	s := &stack{cli: e.Client(t), keys: registry.MustKeys(registry.DefaultPrefix), httpAddr: fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))}
	testkit.StartCoreDNS(t, fmt.Sprintf("infra.example.com.:0 {\n  rollcall {\n    endpoint %s\n    http %s\n  }\n}\n",
		strings.Join(e.Endpoints(), " "), s.httpAddr))
	return s
}

// putHost writes a host record with one public address.
func (s *stack) putHost(t *testing.T, host, addr string) {
	t.Helper()
	testkit.Put(t, s.cli, s.keys.Host(host), fmt.Sprintf(`{"name":%q,"addrs":{"public":[%q]}}`, host, addr))
}

// putInstance writes an instance record; extra is more JSON fields.
func (s *stack) putInstance(t *testing.T, host, svc, extra string) int64 {
	t.Helper()
	return testkit.Put(t, s.cli, s.keys.Instance(host, svc), fmt.Sprintf(`{"service":%q,"host":%q%s}`, svc, host, extra)).Header.Revision
}

// elect writes an election candidate without a lease: the one with the
// lowest create revision is master, and its revision is the term.
func (s *stack) elect(t *testing.T, svc string, lease int64, host string) int64 {
	t.Helper()
	return testkit.Put(t, s.cli, fmt.Sprintf("%s/%x", s.keys.Election(svc), lease), host).Header.Revision
}

// resign deletes an election candidate.
func (s *stack) resign(t *testing.T, svc string, lease int64) {
	t.Helper()
	testkit.Delete(t, s.cli, fmt.Sprintf("%s/%x", s.keys.Election(svc), lease))
}
