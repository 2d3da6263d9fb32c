package security

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/internal/inspect"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestMTLSEverywhere runs etcd with client-certificate auth and every
// component over mTLS with test certificates: the agent (servicereg binary,
// watching a unit of a real systemd user manager), the CoreDNS plugin (`tls
// CERT KEY CA`) and the CLI (`rollcall ls` and `status`). Then it points
// each of them at the same TLS endpoint over plaintext (http://), over
// https:// without certificates, with a client certificate of another CA,
// and trusting another CA than etcd's, and checks that each is refused and
// says so (tlsFindings, explained in deploy/certs.md): the agent keeps running
// with /healthz failing and naming the endpoint and the TLS fix, the plugin
// serves nothing (SERVFAIL) and logs the endpoint as unreachable, the CLI
// exits 1 naming TLS.
func TestMTLSEverywhere(t *testing.T) {
	pki := testkit.NewTLS(t, "root")
	e := testkit.StartEtcd(t, testkit.WithTLS(pki))
	root := e.Client(t)
	https := e.ClientURL
	plain := "http://" + strings.TrimPrefix(https, "https://")
	agentCert, agentKey := pki.Issue(t, "host1", "host1", false)
	dnsCert, dnsKey := pki.Issue(t, "rollcall-dns", "rollcall-dns", false)
	foreign := testkit.NewTLS(t, "root") // another CA, same names

	sd := testkit.StartSystemd(t)
	sd.WriteUnit(unit("web"), testkit.SleepUnit)
	sd.Systemctl("start", unit("web"))

	agentYAML := func(endpoint, tlsLines string) string {
		return fmt.Sprintf(`host: host1
etcd:
  endpoints: [%q]
%sttl: 5s
systemd: user
addrs:
  public: ["192.0.2.10"]
services:
  - name: web
    unit: %s
    ports: [{name: http, port: 8080, proto: tcp}]
`, endpoint, tlsLines, unit("web"))
	}
	certLines := func(cert, key, ca string) string {
		return fmt.Sprintf("  cert: %s\n  key: %s\n  ca: %s\n", cert, key, ca)
	}

	t.Run("all over mTLS", func(t *testing.T) {
		a := startAgent(t, sd, agentYAML(https, certLines(agentCert, agentKey, pki.CA)))
		testkit.Eventually(t, wait, "the agent over mTLS never registered web", func() bool {
			return testkit.Count(t, root, keys.Instance("host1", "web")) == 1
		})
		testkit.Eventually(t, wait, "the agent's /healthz never said ok", func() bool {
			code, _ := a.healthz()
			return code == http.StatusOK
		})

		core := testkit.StartCoreDNS(t, fmt.Sprintf(`sec.example.:0 {
    bind 127.0.0.1
    rollcall {
        endpoint %s
        tls %s %s %s
    }
}`, https, dnsCert, dnsKey, pki.CA))
		for _, netw := range []string{"udp", "tcp"} {
			addr := core.UDP
			if netw == "tcp" {
				addr = core.TCP
			}
			testkit.Eventually(t, wait, "the plugin over mTLS never answered web over "+netw, func() bool {
				r, err := testkit.Exchange(netw, addr, "", "web.sec.example.", dns.TypeA)
				return err == nil && r.Rcode == dns.RcodeSuccess && strings.Join(testkit.Addrs(r.Answer), ",") == "192.0.2.10"
			})
		}

		env := []string{"ROLLCALL_ENDPOINTS=" + https}
		tlsFlags := []string{"-cert", pki.ClientCert, "-key", pki.ClientKey, "-cacert", pki.CA}
		out, stderr, code := runCLI(t, env, append([]string{"ls", "-o", "json"}, tlsFlags...)...)
		var ls inspect.LsView
		if code != 0 || json.Unmarshal([]byte(out), &ls) != nil || len(ls.Services) != 1 || ls.Services[0].Name != "web" {
			t.Errorf("rollcall ls over mTLS: exit %d, stdout %s, stderr %s; want service web", code, out, stderr)
		}
		out, stderr, code = runCLI(t, env, append([]string{"status"}, tlsFlags...)...)
		if code != 0 || !strings.Contains(out, "host1") {
			t.Errorf("rollcall status over mTLS: exit %d, stdout %s, stderr %s; want host1", code, out, stderr)
		}
	})

	// Each way of getting TLS wrong, and what every component must say.
	bad := []struct {
		name      string
		endpoint  string
		cert, key string
		ca        string
		want      string // in the agent's /healthz and log, and the CLI's stderr
	}{
		{name: "plaintext URL", endpoint: plain, want: tlsFindings[0]},
		{name: "https without certificates", endpoint: https, want: tlsFindings[1]},
		{name: "client certificate of another CA", endpoint: https, cert: foreign.ClientCert, key: foreign.ClientKey, ca: pki.CA,
			want: tlsFindings[2]},
		{name: "server certificate not trusted", endpoint: https, cert: agentCert, key: agentKey, ca: foreign.CA,
			want: tlsFindings[3]},
	}
	for _, tc := range bad {
		t.Run("agent refused: "+tc.name, func(t *testing.T) {
			lines := ""
			if tc.cert != "" {
				lines = certLines(tc.cert, tc.key, tc.ca)
			}
			a := startAgent(t, sd, strings.Replace(agentYAML(tc.endpoint, lines), "host: host1", "host: host9", 1))
			testkit.Eventually(t, wait, "the agent's /healthz never explained the TLS failure ("+tc.want+")", func() bool {
				code, body := a.healthz()
				return code == http.StatusServiceUnavailable && strings.Contains(body, tc.want) && strings.Contains(body, tc.endpoint)
			})
			// The log line and /healthz are written one after the other.
			testkit.Eventually(t, wait, "the agent's log never said "+tc.want, func() bool {
				return strings.Contains(a.Out.String(), tc.want)
			})
			if a.Exited() {
				t.Errorf("the agent exited instead of retrying: %v\n%s", a.Err(), a.Out.String())
			}
			if v := a.metric("rollcall_servicereg_lease_held"); v != "0" {
				t.Errorf("lease_held = %q, want 0", v)
			}
			if n := testkit.Count(t, root, keys.HostDir("host9")); n != 0 {
				t.Errorf("%d keys under host9 written without working TLS", n)
			}
		})
	}
	for _, tc := range bad {
		t.Run("CLI refused: "+tc.name, func(t *testing.T) {
			args := []string{"ls", "-timeout", "2s", "-endpoints", tc.endpoint}
			if tc.cert != "" {
				args = append(args, "-cert", tc.cert, "-key", tc.key, "-cacert", tc.ca)
			}
			out, stderr, code := runCLI(t, nil, args...)
			if code != 1 || out != "" || !strings.Contains(stderr, "TLS") || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, tc.endpoint) {
				t.Errorf("rollcall %s: exit %d, stdout %q, stderr %q; want exit 1 naming TLS (%q) and the endpoint",
					strings.Join(args, " "), code, out, stderr, tc.want)
			}
		})
	}
	for _, tc := range bad {
		t.Run("plugin refused: "+tc.name, func(t *testing.T) {
			tlsLine := ""
			if tc.cert != "" {
				tlsLine = fmt.Sprintf("tls %s %s %s", tc.cert, tc.key, tc.ca)
			}
			logs := captureLog(t)
			core := testkit.StartCoreDNS(t, fmt.Sprintf(`bad.example.:0 {
    bind 127.0.0.1
    rollcall {
        endpoint %s
        %s
    }
}`, tc.endpoint, tlsLine))
			for _, netw := range []string{"udp", "tcp"} {
				addr := core.UDP
				if netw == "tcp" {
					addr = core.TCP
				}
				r := testkit.Query(t, netw, addr, "", "web.bad.example.", dns.TypeA)
				if r.Rcode != dns.RcodeServerFailure || len(r.Answer) != 0 {
					t.Errorf("over %s: rcode %s, answer %v; want SERVFAIL and nothing served", netw, dns.RcodeToString[r.Rcode], r.Answer)
				}
			}
			if !strings.Contains(logs.String(), tc.endpoint) {
				t.Errorf("the plugin's log does not name %s:\n%s", tc.endpoint, logs.String())
			}
			// And why: every one of these is a TLS mistake.
			if !strings.Contains(logs.String(), "TLS") {
				t.Errorf("the plugin's log names the endpoint but not TLS:\n%s", logs.String())
			}
		})
	}
	t.Run("etcd refuses a foreign client certificate", func(t *testing.T) {
		cfg := etcdconn.Config{Endpoints: e.Endpoints(), Cert: foreign.ClientCert, Key: foreign.ClientKey, CA: pki.CA}
		cli, err := etcdconn.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := cli.Get(ctx, keys.All()); err == nil {
			t.Fatal("etcd served a client whose certificate is of another CA")
		}
		if err := etcdconn.Diagnose(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tlsFindings[2]) {
			t.Errorf("Diagnose: %v, want %q", err, tlsFindings[2])
		}
	})
}

// tlsFindings are what etcdconn.Diagnose says for each TLS mistake, which
// the agent and the CLI repeat and deploy/certs.md explains.
var tlsFindings = []string{
	"serves TLS, but the URL says plaintext",
	"no CA, client certificate or key is configured",
	"etcd refused this client's certificate",
	"not signed by the configured CA",
	"not valid for this address",
}

// captureLog sends the standard logger's output (CoreDNS's plugin log) to a
// buffer until the test ends.
func captureLog(t *testing.T) *testkit.Buffer {
	var b testkit.Buffer
	log.SetOutput(&b)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	return &b
}

// TestDeployCertificates makes the certificates the way deploy/certs.md says
// (deploy/mkcerts.sh), checks every file its table lists is made, keys are
// private and certificates verify against the CA as the doc's "Check one"
// does, then runs etcd on them: a client with a host's certificate from the
// script is served, one from another CA is not.
func TestDeployCertificates(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed: deploy/mkcerts.sh needs it")
	}
	root := testkit.RepoRoot(t)
	out := t.TempDir()
	mk := exec.Command("sh", filepath.Join(root, "deploy", "mkcerts.sh"), out)
	mk.Env = append(os.Environ(), "MEMBERS=etcd1=127.0.0.1", "CLIENTS=root rollcall-dns host1")
	if b, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("mkcerts.sh: %v\n%s", err, b)
	}
	doc, err := os.ReadFile(filepath.Join(root, "deploy", "certs.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "etcd1.pem", "etcd1-key.pem", "root.pem", "root-key.pem",
		"rollcall-dns.pem", "rollcall-dns-key.pem", "host1.pem", "host1-key.pem"} {
		st, err := os.Stat(filepath.Join(out, f))
		if err != nil {
			t.Errorf("mkcerts.sh did not make %s: %v", f, err)
			continue
		}
		if strings.HasSuffix(f, "-key.pem") && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v; certs.md says keys are written 0600", f, st.Mode().Perm())
		}
		generic := strings.NewReplacer("etcd1", "etcdN", "host1", "hostN").Replace(f)
		if f != "ca-key.pem" && !bytes.Contains(doc, []byte(generic)) {
			t.Errorf("certs.md does not say where %s (%s) goes", f, generic)
		}
	}
	// certs.md explains every finding the components report.
	for _, f := range tlsFindings {
		if !bytes.Contains(doc, []byte(f)) {
			t.Errorf("certs.md (When TLS is wrong) does not explain %q", f)
		}
	}
	for _, c := range []string{"etcd1", "root", "rollcall-dns", "host1"} {
		v, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(out, "ca.pem"), filepath.Join(out, c+".pem")).CombinedOutput()
		if err != nil {
			t.Errorf("openssl verify %s.pem (certs.md, Check one): %v\n%s", c, err, v)
		}
	}

	e := testkit.StartEtcd(t, testkit.WithTLS(&testkit.TLSFiles{
		CA:         filepath.Join(out, "ca.pem"),
		ServerCert: filepath.Join(out, "etcd1.pem"), ServerKey: filepath.Join(out, "etcd1-key.pem"),
		ClientCert: filepath.Join(out, "root.pem"), ClientKey: filepath.Join(out, "root-key.pem"),
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	host1, err := etcdconn.New(etcdconn.Config{Endpoints: e.Endpoints(),
		Cert: filepath.Join(out, "host1.pem"), Key: filepath.Join(out, "host1-key.pem"), CA: filepath.Join(out, "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	defer host1.Close()
	if _, err := host1.Put(ctx, keys.Host("host1"), "{}"); err != nil {
		t.Errorf("host1's certificate from mkcerts.sh: %v", err)
	}
	foreign := testkit.NewTLS(t, "host1")
	err = etcdconn.Diagnose(ctx, etcdconn.Config{Endpoints: e.Endpoints(), Cert: foreign.ClientCert, Key: foreign.ClientKey, CA: filepath.Join(out, "ca.pem")})
	if err == nil {
		t.Error("etcd on mkcerts.sh certificates accepted a client certificate of another CA")
	}
}
