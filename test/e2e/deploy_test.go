package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	// The same CoreDNS build as bin/coredns.
	_ "github.com/rollcall/rollcall/internal/corednsbuild"
	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/internal/inspect"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/servicereg"
	"github.com/rollcall/rollcall/test/rbac"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestProductionExample boots the production example of deploy/ on
// loopback, so that no example can rot: certificates from deploy/mkcerts.sh,
// a 3-member etcd cluster from deploy/etcd/etcdN.yml (mTLS for clients and
// peers), the RBAC plan of deploy/rbac.sh with auth enabled, host1's agent
// from deploy/hosts/host1.yml as etcd user host1, and CoreDNS from
// deploy/coredns/Corefile as user rollcall-dns. Only addresses, ports and file
// locations are changed. Then DNS answers host1's services, and `rollcall ls`
// reads the cluster with the root certificate.
func TestProductionExample(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed: deploy/mkcerts.sh needs it")
	}
	root := testkit.RepoRoot(t)
	deploy := filepath.Join(root, "deploy")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Certificates, made as the docs say, with the members on loopback.
	pki := t.TempDir()
	mk := exec.CommandContext(ctx, "sh", filepath.Join(deploy, "mkcerts.sh"), pki)
	mk.Env = append(os.Environ(),
		"MEMBERS=etcd1=127.0.0.1 etcd2=127.0.0.1 etcd3=127.0.0.1",
		"CLIENTS=root rollcall-dns host1 host2 host3")
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("mkcerts.sh: %v\n%s", err, out)
	}

	eps := startClusterFromConfigs(t, ctx, deploy, pki)

	// RBAC as deploy/rbac.sh lays it out (test/rbac's test keeps the two
	// equal), root by certificate, then auth on.
	rootCfg := etcdconn.Config{Endpoints: eps, Cert: filepath.Join(pki, "root.pem"), Key: filepath.Join(pki, "root-key.pem"), CA: filepath.Join(pki, "ca.pem")}
	rootCli, err := etcdconn.New(rootCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rootCli.Close()
	if _, err := rootCli.UserAddWithOptions(ctx, "root", "", &clientv3.UserAddOptions{NoPassword: true}); err != nil {
		t.Fatalf("add root: %v", err)
	}
	if _, err := rootCli.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatalf("grant root: %v", err)
	}
	plan, err := rbac.NewPlan(registry.MustKeys("/rollcall"), []rbac.Host{
		{Name: "host1", Elections: []string{"db", "web"}},
		{Name: "host2", Elections: []string{"db", "web"}},
		{Name: "host3", Elections: []string{"cron"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rbac.Apply(ctx, rootCli, plan, nil); err != nil {
		t.Fatalf("apply RBAC: %v", err)
	}
	if _, err := rootCli.AuthEnable(ctx); err != nil {
		t.Fatalf("auth enable: %v", err)
	}

	// host1's agent, from its example config.
	agentCfg := hostConfig(t, filepath.Join(deploy, "hosts", "host1.yml"), pki, eps)
	static := agentCfg.Services
	for i := range static {
		// The example's hook programs do not exist here; elections are
		// not what this test is about.
		static[i].OnMaster, static[i].OnStandby, static[i].MasterElection = nil, nil, false
	}
	agentCfg.Services = nil
	agentCfg.Addrs = registry.Addrs{
		"public": {netip.MustParseAddr("192.0.2.11")},
		"vpn0":   {netip.MustParseAddr("10.100.0.11")},
	}
	agent, err := servicereg.New(agentCfg, servicereg.Options{Static: static, NoSystemd: true})
	if err != nil {
		t.Fatalf("agent from deploy/hosts/host1.yml: %v", err)
	}
	actx, stopAgent := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := agent.Run(actx); err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	defer func() { stopAgent(); wg.Wait() }()
	select {
	case <-agent.Ready():
	case <-ctx.Done():
		t.Fatal("host1's agent never registered (is RBAC refusing it?)")
	}

	// CoreDNS from the example Corefile.
	dnsPort := testkit.FreePort(t)
	core := testkit.StartCoreDNS(t, rewriteCorefile(t, filepath.Join(deploy, "coredns", "Corefile"), pki, eps, dnsPort))
	// Stopped before the agent and etcd: an open watch holds each etcd
	// member's close for seconds.
	defer core.Stop()
	addr := "127.0.0.1:" + strconv.Itoa(dnsPort)
	testkit.Eventually(t, time.Minute, "web.infra.example.com never answered host1's public address", func() bool {
		r, err := testkit.Exchange("udp", addr, "", "web.infra.example.com.", dns.TypeA)
		return err == nil && len(testkit.Addrs(r.Answer)) == 1 && testkit.Addrs(r.Answer)[0] == "192.0.2.11"
	})
	r := testkit.Query(t, "tcp", addr, "", "_http._tcp.web.infra.example.com.", dns.TypeSRV)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.SRV).Port != 8080 {
		t.Errorf("SRV _http._tcp.web: %v, want host1's port 8080", r.Answer)
	}

	// The operator reads the cluster with the root certificate.
	out := rollcall(t, nil, "ls", "-o", "json", "-endpoints", strings.Join(eps, ","),
		"-cert", rootCfg.Cert, "-key", rootCfg.Key, "-cacert", rootCfg.CA)
	var ls inspect.LsView
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		t.Fatalf("rollcall ls -o json: %v\n%s", err, out)
	}
	var names []string
	for _, s := range ls.Services {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "db,web" {
		t.Errorf("rollcall ls over TLS: services %v, want db,web", names)
	}
}

// startClusterFromConfigs starts the three members of deploy/etcd/ in this
// process, each from its config file with only its URLs, data folder and
// certificate folder moved, and returns the client URLs.
func startClusterFromConfigs(t *testing.T, ctx context.Context, deploy, pki string) []string {
	t.Helper()
	type member struct {
		name         string
		client, peer string
	}
	var ms []member
	var initial []string
	for i := 1; i <= 3; i++ {
		m := member{
			name:   fmt.Sprintf("etcd%d", i),
			client: fmt.Sprintf("https://127.0.0.1:%d", testkit.FreePort(t)),
			peer:   fmt.Sprintf("https://127.0.0.1:%d", testkit.FreePort(t)),
		}
		ms = append(ms, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	dataDir := t.TempDir()
	var (
		mu      sync.Mutex
		started []*embed.Etcd
		wg      sync.WaitGroup
		errs    = make([]error, len(ms))
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range started {
			e.Close()
		}
	})
	for i, m := range ms {
		cfg, err := embed.ConfigFromFile(filepath.Join(deploy, "etcd", m.name+".yml"))
		if err != nil {
			t.Fatalf("deploy/etcd/%s.yml: %v", m.name, err)
		}
		if cfg.Name != m.name || !cfg.ClientTLSInfo.ClientCertAuth || !cfg.PeerTLSInfo.ClientCertAuth || len(cfg.PeerTLSInfo.AllowedCNs) != 3 {
			t.Fatalf("deploy/etcd/%s.yml: name %q, client cert auth %v, peer cert auth %v, peer CNs %v: want mTLS everywhere",
				m.name, cfg.Name, cfg.ClientTLSInfo.ClientCertAuth, cfg.PeerTLSInfo.ClientCertAuth, cfg.PeerTLSInfo.AllowedCNs)
		}
		cu, _ := url.Parse(m.client)
		pu, _ := url.Parse(m.peer)
		cfg.Dir = filepath.Join(dataDir, m.name)
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
		cfg.InitialCluster = strings.Join(initial, ",")
		for _, p := range []*string{&cfg.ClientTLSInfo.CertFile, &cfg.ClientTLSInfo.KeyFile, &cfg.ClientTLSInfo.TrustedCAFile,
			&cfg.PeerTLSInfo.CertFile, &cfg.PeerTLSInfo.KeyFile, &cfg.PeerTLSInfo.TrustedCAFile} {
			*p = strings.Replace(*p, "/etc/etcd/pki", pki, 1)
		}
		cfg.LogLevel = "error"
		cfg.LogOutputs = []string{filepath.Join(dataDir, m.name+".log")}
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := embed.StartEtcd(cfg)
			if err != nil {
				errs[i] = fmt.Errorf("start %s: %w", m.name, err)
				return
			}
			mu.Lock()
			started = append(started, e)
			mu.Unlock()
			select {
			case <-e.Server.ReadyNotify():
			case err := <-e.Err():
				errs[i] = fmt.Errorf("%s: %w", m.name, err)
			case <-ctx.Done():
				errs[i] = fmt.Errorf("%s not ready: %w", m.name, ctx.Err())
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var eps []string
	for _, m := range ms {
		eps = append(eps, m.client)
	}
	return eps
}

var exampleEndpoints = regexp.MustCompile(`https://10\.0\.0\.[123]:2379`)

// hostConfig loads an example agent config with the cluster's endpoints and
// the test's certificates.
func hostConfig(t *testing.T, path, pki string, eps []string) *servicereg.Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "/etc/servicereg/", pki+"/")
	i := 0
	text = exampleEndpoints.ReplaceAllStringFunc(text, func(string) string { i++; return eps[(i-1)%len(eps)] })
	cfg, err := servicereg.ParseConfig(path, []byte(text))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg
}

// rewriteCorefile moves the example Corefile to the test's cluster,
// certificates and port, and drops its side listeners (metrics, ready,
// health), whose fixed ports other tests may hold.
func rewriteCorefile(t *testing.T, path, pki string, eps []string, port int) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && (f[0] == "prometheus" || f[0] == "ready" || f[0] == "health") {
			continue
		}
		if len(f) > 0 && f[0] == "endpoint" {
			l = "        endpoint " + strings.Join(eps, " ")
		}
		l = strings.ReplaceAll(l, "/etc/coredns/rollcall-dns", pki+"/rollcall-dns")
		l = strings.ReplaceAll(l, "/etc/coredns/ca.pem", pki+"/ca.pem")
		l = strings.ReplaceAll(l, ":53 {", ":"+strconv.Itoa(port)+" {")
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// TestExampleHostConfigs: every example agent config parses, and its etcd
// user's RBAC grants match the comment that tells how to make them.
func TestExampleHostConfigs(t *testing.T) {
	pki := t.TempDir()
	for _, f := range []string{"ca.pem", "host1.pem", "host1-key.pem", "host2.pem", "host2-key.pem", "host3.pem", "host3-key.pem"} {
		if err := os.WriteFile(filepath.Join(pki, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob(filepath.Join(testkit.RepoRoot(t), "deploy", "hosts", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example host configs in deploy/hosts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg := hostConfig(t, f, pki, []string{"https://127.0.0.1:2379"})
			data, _ := os.ReadFile(f)
			var elections []string
			for _, s := range cfg.Services {
				if s.MasterElection {
					elections = append(elections, s.Name)
				}
			}
			// The comment's rbac.sh line must grant this host's elections.
			want := cfg.Host
			if len(elections) > 0 {
				want += ":" + strings.Join(sortedCopy(elections), ",")
			}
			if !strings.Contains(string(data), " "+want) {
				t.Errorf("%s: its rbac.sh line should grant %q", f, want)
			}
		})
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
