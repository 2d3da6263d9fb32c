package testkit

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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
	t          testing.TB // of StartEtcd or StartCluster, for Start; nil from NewEtcd
	Name       string
	Dir        string
	ClientURL  string
	PeerURL    string
	initial    string // initial-cluster string
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

// NewEtcd is StartEtcd for a program that is not a test (the benchmark): it
// returns the error, and the caller stops the member and removes its data
// with Close.
func NewEtcd(opts ...EtcdOption) (*Etcd, error) {
	c, err := NewCluster(1, opts...)
	if err != nil {
		return nil, err
	}
	return c.Members[0], nil
}

// Cluster is an embedded etcd cluster of several members on loopback.
type Cluster struct {
	Members []*Etcd
}

// StartCluster starts an n-member etcd cluster and stops it when the test ends.
func StartCluster(t testing.TB, n int, opts ...EtcdOption) *Cluster {
	t.Helper()
	c, err := NewCluster(n, opts...)
	if err != nil {
		t.Fatalf("start etcd cluster: %v", err)
	}
	for _, m := range c.Members {
		m.t = t
	}
	t.Cleanup(c.Close)
	return c
}

// NewCluster is StartCluster returning the error; the caller stops the
// members and removes their data with Close.
func NewCluster(n int, opts ...EtcdOption) (*Cluster, error) {
	var o etcdOpts
	for _, f := range opts {
		f(&o)
	}
	// A port found free can be taken before etcd binds it: test packages
	// run in parallel, and their clients' connections draw from the same
	// range. Such a start is tried again on other ports.
	var err error
	for try := 0; try < 5; try++ {
		var c *Cluster
		if c, err = newCluster(n, o); err == nil || !portTaken(err) {
			return c, err
		}
	}
	return nil, err
}

// portTaken reports whether err is a listener's "address already in use".
func portTaken(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

func newCluster(n int, o etcdOpts) (*Cluster, error) {
	c := &Cluster{}
	if err := c.addMembers(n, o); err != nil {
		c.Close()
		return nil, err
	}
	// Members of a new cluster wait for each other, so start them together.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range c.Members {
		wg.Go(func() { errs[i] = m.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// addMembers makes n members, not started: each with a data folder of its
// own and free ports, all in one initial cluster.
func (c *Cluster) addMembers(n int, o etcdOpts) error {
	scheme := "http"
	if o.tls != nil {
		scheme = "https"
	}
	token := fmt.Sprintf("rollcall-test-%d", time.Now().UnixNano())
	var initial []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("m%d", i)
		dir, err := os.MkdirTemp("", "rollcall-etcd-"+name+"-")
		if err != nil {
			return err
		}
		m := &Etcd{Name: name, Dir: dir, clusterTok: token, tls: o.tls}
		// Listed before the ports are taken, so that Close removes dir.
		c.Members = append(c.Members, m)
		cp, err := TryFreePort()
		if err != nil {
			return err
		}
		pp, err := TryFreePort()
		if err != nil {
			return err
		}
		m.ClientURL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, cp)
		m.PeerURL = fmt.Sprintf("http://127.0.0.1:%d", pp)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	for _, m := range c.Members {
		m.initial = strings.Join(initial, ",")
	}
	return nil
}

// Close stops every member and removes its data.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		m.Close()
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
	t.Helper()
	cli, err := c.NewClient()
	return clientForTest(t, cli, err)
}

// NewClient is Client returning the error; the caller closes the client.
func (c *Cluster) NewClient() (*clientv3.Client, error) {
	return newClient(c.Endpoints(), c.Members[0].tls)
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
	cfg.InitialCluster = m.initial
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

// Start restarts a stopped member on the same ports and data, and fails the
// test that started it when it does not come up. A member from NewEtcd or
// NewCluster has no test: use TryStart.
func (m *Etcd) Start() {
	if m.t == nil {
		panic("testkit: Etcd.Start of a member from NewEtcd or NewCluster: use TryStart")
	}
	m.t.Helper()
	if err := m.TryStart(); err != nil {
		m.t.Fatalf("restart: %v", err)
	}
}

// TryStart is Start returning the error.
func (m *Etcd) TryStart() error { return m.start() }

// StartTogether restarts stopped members of one cluster at once and fails
// the test when one does not come up. They must start together: a member
// is ready only once a quorum is up, so starting them one by one would
// wait on the first for ever.
func StartTogether(t testing.TB, members ...*Etcd) {
	t.Helper()
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { errs[i] = m.TryStart() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("restart: %v", err)
		}
	}
}

// Close stops the member for good and removes its data.
func (m *Etcd) Close() {
	m.Stop()
	os.RemoveAll(m.Dir)
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
	t.Helper()
	cli, err := m.NewClient()
	return clientForTest(t, cli, err)
}

// NewClient is Client returning the error; the caller closes the client.
func (m *Etcd) NewClient() (*clientv3.Client, error) {
	return newClient(m.Endpoints(), m.tls)
}

func newClient(eps []string, tls *TLSFiles) (*clientv3.Client, error) {
	cfg := etcdconn.Config{Endpoints: eps}
	if tls != nil {
		cfg.Cert, cfg.Key, cfg.CA = tls.ClientCert, tls.ClientKey, tls.CA
	}
	cli, err := etcdconn.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return cli, nil
}

// clientForTest takes NewClient's results: it fails the test on the error,
// and closes the client when the test ends.
func clientForTest(t testing.TB, cli *clientv3.Client, err error) *clientv3.Client {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
