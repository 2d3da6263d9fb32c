package testkit

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/rollcall/rollcall/internal/etcdconn"
)

// Etcd is one embedded etcd member on loopback. Stop and Start simulate an
// outage: the member keeps its data dir and ports, so clients reconnect to the
// same URL.
type Etcd struct {
	t          testing.TB
	Name       string
	Dir        string
	ClientURL  string
	PeerURL    string
	cluster    string // initial-cluster string
	clusterTok string
	tls        *TLSFiles

	mu sync.Mutex
	e  *embed.Etcd
}

// EtcdOption changes how StartEtcd configures its member(s).
type EtcdOption func(*etcdOpts)

type etcdOpts struct {
	tls *TLSFiles
}

// WithTLS serves clients over mTLS with the given files (see NewTLS): plaintext
// clients are refused.
func WithTLS(f *TLSFiles) EtcdOption { return func(o *etcdOpts) { o.tls = f } }

// StartEtcd starts a one-member etcd cluster and stops it when the test ends.
func StartEtcd(t testing.TB, opts ...EtcdOption) *Etcd {
	t.Helper()
	c := StartCluster(t, 1, opts...)
	return c.Members[0]
}

// Cluster is an embedded etcd cluster of several members on loopback.
type Cluster struct {
	Members []*Etcd
}

// StartCluster starts an n-member etcd cluster and stops it when the test ends.
func StartCluster(t testing.TB, n int, opts ...EtcdOption) *Cluster {
	t.Helper()
	var o etcdOpts
	for _, f := range opts {
		f(&o)
	}
	scheme := "http"
	if o.tls != nil {
		scheme = "https"
	}
	base := t.TempDir()
	c := &Cluster{}
	var initial []string
	for i := 0; i < n; i++ {
		m := &Etcd{
			t:          t,
			Name:       fmt.Sprintf("m%d", i),
			Dir:        filepath.Join(base, fmt.Sprintf("m%d", i)),
			ClientURL:  fmt.Sprintf("%s://127.0.0.1:%d", scheme, FreePort(t)),
			PeerURL:    fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
			clusterTok: fmt.Sprintf("rollcall-test-%d", time.Now().UnixNano()),
			tls:        o.tls,
		}
		initial = append(initial, m.Name+"="+m.PeerURL)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.cluster = strings.Join(initial, ",")
		m.clusterTok = c.Members[0].clusterTok
	}
	// Members of a new cluster wait for each other, so start them together.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, m := range c.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.start()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.stopAll()
			t.Fatalf("start etcd cluster: %v", err)
		}
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *Cluster) stopAll() {
	for _, m := range c.Members {
		m.Stop()
	}
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Leader returns the index of the member that is the raft leader now, or -1.
func (c *Cluster) Leader() int {
	for i, m := range c.Members {
		m.mu.Lock()
		e := m.e
		m.mu.Unlock()
		if e != nil && e.Server.Leader() == e.Server.MemberID() {
			return i
		}
	}
	return -1
}

// Client returns a client for all members, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	return newClient(t, c.Endpoints(), c.Members[0].tls)
}

func (m *Etcd) start() error {
	cfg := embed.NewConfig()
	cfg.Name = m.Name
	cfg.Dir = m.Dir
	cu, _ := url.Parse(m.ClientURL)
	pu, _ := url.Parse(m.PeerURL)
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = m.cluster
	cfg.InitialClusterToken = m.clusterTok
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{"stderr"}
	// Short election ticks make leader changes in fault tests take well under
	// a second, as on a fast LAN.
	cfg.TickMs = 50
	cfg.ElectionMs = 500
	if m.tls != nil {
		cfg.ClientTLSInfo.CertFile = m.tls.ServerCert
		cfg.ClientTLSInfo.KeyFile = m.tls.ServerKey
		cfg.ClientTLSInfo.TrustedCAFile = m.tls.CA
		cfg.ClientTLSInfo.ClientCertAuth = true
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "member")); err == nil {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcd member %s: %w", m.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("etcd member %s not ready after 30s", m.Name)
	}
	m.mu.Lock()
	m.e = e
	m.mu.Unlock()
	return nil
}

// Stop stops the member, keeping its data; a no-op when it is stopped.
func (m *Etcd) Stop() {
	m.mu.Lock()
	e := m.e
	m.e = nil
	m.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Start restarts a stopped member on the same ports and data.
func (m *Etcd) Start() {
	m.t.Helper()
	if err := m.start(); err != nil {
		m.t.Fatalf("restart: %v", err)
	}
}

// Server returns the running embedded server, or nil when stopped.
func (m *Etcd) Server() *embed.Etcd {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.e
}

// Endpoints returns the member's client URL as a list.
func (m *Etcd) Endpoints() []string { return []string{m.ClientURL} }

// Client returns a client for this member, closed when the test ends.
func (m *Etcd) Client(t testing.TB) *clientv3.Client {
	return newClient(t, m.Endpoints(), m.tls)
}

func newClient(t testing.TB, eps []string, tls *TLSFiles) *clientv3.Client {
	t.Helper()
	cfg := etcdconn.Config{Endpoints: eps}
	if tls != nil {
		cfg.Cert, cfg.Key, cfg.CA = tls.ClientCert, tls.ClientKey, tls.CA
	}
	cli, err := etcdconn.New(cfg)
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Put writes key=value and fails the test on error.
func Put(t testing.TB, cli *clientv3.Client, key, value string, opts ...clientv3.OpOption) *clientv3.PutResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Put(ctx, key, value, opts...)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return r
}

// Delete deletes key and fails the test on error.
func Delete(t testing.TB, cli *clientv3.Client, key string, opts ...clientv3.OpOption) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, key, opts...); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

// Exists reports whether key is in etcd, and fails the test when etcd does
// not answer: a "gone" assertion must not pass because etcd was down.
func Exists(t testing.TB, cli *clientv3.Client, key string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return r.Count > 0
}
