package fault

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

const zone = "infra.example.com."

// long skips a test that takes a minute or more unless ROLLCALL_LONG=1 (set
// by CI): the package's default run stays short.
func long(t *testing.T) {
	if os.Getenv("ROLLCALL_LONG") != "1" {
		t.Skip("takes about a minute; set ROLLCALL_LONG=1 to run it")
	}
}

// wait bounds every asynchronous outcome. It is generous: the machine is
// shared, and these are outcomes, not speed tests.
const wait = 60 * time.Second

var keys = registry.MustKeys(registry.DefaultPrefix)

// proc is a project binary running as a process, its output collected.
type proc struct {
	name string
	*testkit.Process
}

func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(testkit.Binary(t, name), args...)
	cmd.Env = append(os.Environ(), env...)
	tp, err := testkit.StartProcess(cmd)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, Process: tp}
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("output of %s %s:\n%s", name, strings.Join(args, " "), p.Out)
		}
	})
	return p
}

// stop sends SIGTERM and waits; a process that does not exit in time is
// killed and the test fails.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if p.Stop(wait) {
		t.Errorf("%s still running %v after SIGTERM; killed", p.name, wait)
	}
}

// coreDNS is bin/coredns serving zone from etcd, with its metrics and ready
// endpoints on ports of their own.
type coreDNS struct {
	*proc
	dns, metrics, ready string // host:port

	askMu  sync.Mutex
	askers map[string]*asker // by network, for query
}

// startCoreDNS starts bin/coredns on port (0: a free one) and waits until
// its ready endpoint says 200: the first list of etcd is in.
func startCoreDNS(t *testing.T, endpoints []string, port int) *coreDNS {
	t.Helper()
	c := launchCoreDNS(t, endpoints, port)
	testkit.Eventually(t, wait, "CoreDNS never became ready", func() bool {
		if c.Exited() {
			t.Fatalf("coredns exited: %v\n%s", c.Err(), c.Out)
		}
		return c.isReady()
	})
	return c
}

// launchCoreDNS starts bin/coredns without waiting for it.
func launchCoreDNS(t *testing.T, endpoints []string, port int) *coreDNS {
	t.Helper()
	if port == 0 {
		port = testkit.FreePort(t)
	}
	c := &coreDNS{
		dns:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		metrics: net.JoinHostPort("127.0.0.1", strconv.Itoa(testkit.FreePort(t))),
		ready:   net.JoinHostPort("127.0.0.1", strconv.Itoa(testkit.FreePort(t))),
	}
	corefile := fmt.Sprintf(`%s:%d {
    bind 127.0.0.1
    rollcall {
        endpoint %s
        ttl 1
    }
    prometheus %s
    ready %s
}
`, zone, port, strings.Join(endpoints, " "), c.metrics, c.ready)
	path := filepath.Join(t.TempDir(), "Corefile")
	if err := os.WriteFile(path, []byte(corefile), 0o644); err != nil {
		t.Fatal(err)
	}
	c.proc = startProc(t, "coredns", nil, "-conf", path)
	t.Cleanup(c.closeAskers)
	return c
}

func (c *coreDNS) isReady() bool {
	cl := http.Client{Timeout: 2 * time.Second}
	r, err := cl.Get("http://" + c.ready + "/ready")
	if err != nil {
		return false
	}
	r.Body.Close()
	return r.StatusCode == http.StatusOK
}

// metric reads one sample of the Prometheus text endpoint: the first
// series named name whose labels include every pair of labels.
func (c *coreDNS) metric(t *testing.T, name string, labels map[string]string) (float64, bool) {
	return scrape(t, "http://"+c.metrics+"/metrics", name, labels)
}

func scrape(t *testing.T, url, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	cl := http.Client{Timeout: 5 * time.Second}
	r, err := cl.Get(url)
	if err != nil {
		t.Logf("scrape %s: %v", url, err)
		return 0, false
	}
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for k, v := range labels {
			if !strings.Contains(line, k+"="+strconv.Quote(v)) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v, true
	}
	return 0, false
}

// query asks the server once; an error is a lost answer.
func (c *coreDNS) query(netw, name string, qtype uint16) (*dns.Msg, error) {
	c.askMu.Lock()
	defer c.askMu.Unlock()
	if c.askers == nil {
		c.askers = map[string]*asker{}
	}
	a := c.askers[netw]
	if a == nil {
		a = newAsker(c.dns, netw)
		c.askers[netw] = a
	}
	return a.exchange(dns.Fqdn(name), qtype)
}

// close closes the sockets query keeps.
func (c *coreDNS) closeAskers() {
	c.askMu.Lock()
	defer c.askMu.Unlock()
	for _, a := range c.askers {
		a.close()
	}
}

// hostsOf asks over TCP (all records) for the A records of service and
// returns the answering hosts, known by their addresses (host i of a test
// has address addrOf(i)).
func (c *coreDNS) hostsOf(t *testing.T, service string) (map[string]bool, error) {
	t.Helper()
	m, err := c.query("tcp", service+"."+zone, dns.TypeA)
	if err != nil {
		return nil, err
	}
	if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%s: rcode %s", service, dns.RcodeToString[m.Rcode])
	}
	out := map[string]bool{}
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			out[hostOfAddr(a.A.String())] = true
		}
	}
	return out, nil
}

// serial returns the SOA serial: the etcd revision of the data served.
func (c *coreDNS) serial(netw string) (uint32, error) {
	m, err := c.query(netw, zone, dns.TypeSOA)
	if err != nil {
		return 0, err
	}
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
		return 0, fmt.Errorf("SOA: rcode %s, %d answers", dns.RcodeToString[m.Rcode], len(m.Answer))
	}
	return m.Answer[0].(*dns.SOA).Serial, nil
}

// Every host of these tests has one public address, 192.0.2.<n+1> for host
// "h<n>", so a DNS answer names its hosts.
func hostName(n int) string { return fmt.Sprintf("h%d", n) }

func addrOf(host string) string {
	n, _ := strconv.Atoi(strings.TrimPrefix(host, "h"))
	return fmt.Sprintf("192.0.2.%d", n+1)
}

func hostOfAddr(a string) string {
	n, err := strconv.Atoi(strings.TrimPrefix(a, "192.0.2."))
	if err != nil {
		return "?" + a
	}
	return hostName(n - 1)
}

// unitName names service's unit on host uniquely on this machine (see
// testkit.UnitName).
func unitName(service, host string) string { return testkit.UnitName("rcf", service+"-"+host) }

// agentSpec is one agent's config.
type agentSpec struct {
	host      string
	endpoints []string
	ttl       time.Duration
	services  []serviceSpec
	metrics   bool // serve /metrics on a free port
}

type serviceSpec struct {
	name                string
	election            bool
	onMaster, onStandby []string
}

// yaml writes the agent config (JSON-quoted scalars are YAML).
func (s agentSpec) yaml() string {
	q := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	var b strings.Builder
	fmt.Fprintf(&b, "host: %s\netcd:\n  endpoints: %s\nttl: %s\nsystemd: user\naddrs:\n  public: [%s]\nservices:\n",
		s.host, q(s.endpoints), s.ttl, q(addrOf(s.host)))
	for _, svc := range s.services {
		fmt.Fprintf(&b, "  - name: %s\n    unit: %s\n", svc.name, q(unitName(svc.name, s.host)))
		if svc.election {
			b.WriteString("    master_election: true\n")
		}
		if len(svc.onMaster) > 0 {
			fmt.Fprintf(&b, "    on_master: %s\n", q(svc.onMaster))
		}
		if len(svc.onStandby) > 0 {
			fmt.Fprintf(&b, "    on_standby: %s\n", q(svc.onStandby))
		}
	}
	return b.String()
}

// agent is bin/servicereg running as one host.
type agent struct {
	*proc
	host    string
	metrics string // host:port, "" when off
}

// startAgent writes the units of spec's services (stopped) and starts the
// agent against the systemd manager sd; it waits for the host record.
func startAgent(t *testing.T, sd *testkit.Systemd, cli *clientv3.Client, spec agentSpec) *agent {
	t.Helper()
	for _, svc := range spec.services {
		sd.WriteUnit(unitName(svc.name, spec.host), testkit.SleepUnit)
	}
	path := filepath.Join(t.TempDir(), "servicereg.yml")
	if err := os.WriteFile(path, []byte(spec.yaml()), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &agent{host: spec.host}
	if spec.metrics {
		a.metrics = net.JoinHostPort("127.0.0.1", strconv.Itoa(testkit.FreePort(t)))
	}
	a.proc = startProc(t, "servicereg", sd.Env(), "-config", path, "-metrics", a.metrics, "-log-level", "debug")
	testkit.Eventually(t, wait, spec.host+": no host record", func() bool {
		if a.Exited() {
			t.Fatalf("agent %s exited: %v\n%s", spec.host, a.Err(), a.Out)
		}
		kvs, err := get(cli, keys.Host(spec.host))
		return err == nil && len(kvs) == 1
	})
	return a
}

// get reads a key or prefix (opts) and returns its key-values. A failed read
// is an error, never an empty map: inside Eventually it may mean "not yet"
// for a key that must appear, never "gone" for one that must not.
func get(cli *clientv3.Client, key string, opts ...clientv3.OpOption) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, key, opts...)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	out := map[string]string{}
	for _, kv := range r.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out, nil
}

// registered returns, per service, the hosts with an instance key in etcd;
// a failed read is an error, never "none registered".
func registered(cli *clientv3.Client) (map[string]map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, keys.Hosts(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("read the registry: %w", err)
	}
	out := map[string]map[string]bool{}
	for _, kv := range r.Kvs {
		k, err := keys.Parse(string(kv.Key))
		if err != nil || k.Kind != registry.KindInstance {
			continue
		}
		if out[k.Service] == nil {
			out[k.Service] = map[string]bool{}
		}
		out[k.Service][k.Host] = true
	}
	return out, nil
}

// activeUnits asks systemd which of the units are active: the truth the
// registry must converge to.
func activeUnits(t *testing.T, sd *testkit.Systemd, units []string) map[string]bool {
	t.Helper()
	out, _ := sd.TrySystemctl(append([]string{"is-active"}, units...)...)
	states := strings.Fields(out)
	if len(states) != len(units) {
		t.Fatalf("systemctl is-active %v: %q", units, out)
	}
	active := map[string]bool{}
	for i, u := range units {
		active[u] = states[i] == "active"
	}
	return active
}

func setString(m map[string]bool) string {
	var s []string
	for k, v := range m {
		if v {
			s = append(s, k)
		}
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

// revision returns etcd's current revision.
func revision(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, "/", clientv3.WithCountOnly(), clientv3.WithLimit(1))
	if err != nil {
		t.Fatalf("read etcd revision: %v", err)
	}
	return r.Header.Revision
}

// hang stops member m's raft at once, as a crash would, without handing
// leadership to a peer, but leaves its client port up: the connections
// clients hold to it stay open and go silent, as with a member stuck on its
// disk. (testkit's Stop is a graceful shutdown: the member keeps serving
// the streams it has for seconds and hands leadership over before it goes.)
// The returned func closes the member for good; it can then be started
// again on its data.
func hang(m *testkit.Etcd) (stop func()) {
	if e := m.Server(); e != nil {
		e.Server.HardStop()
	}
	return m.Stop
}

// kill stops member m as a crash would: hang, then close in the background
// (which takes seconds, waiting for the streams clients hold). The returned
// func waits for the close, after which the member can be started again.
func kill(m *testkit.Etcd) (closed func()) {
	stop := hang(m)
	done := make(chan struct{})
	go func() {
		defer close(done)
		stop()
	}()
	return func() { <-done }
}
