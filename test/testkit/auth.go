package testkit

import (
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// StartAuthEtcd starts etcd with client certificates (a CA whose client
// certificate has CN root) and auth on, as in production: it adds user root
// with the root role, runs setup with root's client (to create roles and
// users, e.g. test/rbac's Apply), then enables auth. It returns the
// server, its certificates (Issue more for other users) and root's client.
func StartAuthEtcd(ctx context.Context, t testing.TB, setup func(ctx context.Context, root *clientv3.Client) error) (*Etcd, *TLSFiles, *clientv3.Client) {
	t.Helper()
	tlsFiles := NewTLS(t, "root")
	e := StartEtcd(t, WithTLS(tlsFiles))
	root := e.Client(t)
	if _, err := root.UserAddWithOptions(ctx, "root", "", &clientv3.UserAddOptions{NoPassword: true}); err != nil {
		t.Fatalf("add user root: %v", err)
	}
	if _, err := root.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatalf("grant root the root role: %v", err)
	}
	if err := setup(ctx, root); err != nil {
		t.Fatalf("set up roles and users: %v", err)
	}
	if _, err := root.AuthEnable(ctx); err != nil {
		t.Fatalf("enable auth: %v", err)
	}
	return e, tlsFiles, root
}
