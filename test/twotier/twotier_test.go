// Package twotier tests the two-tier layout for large fleets
// (deploy/README.md, "Large fleets: two tiers") with the example Corefiles
// of corefile/two-tier/: a central CoreDNS with rollcall and hostview, and
// per-host CoreDNS servers that only cache and forward to it.
//
// The point of the layout is that the central server answers each host's
// forwarded queries in that host's view, which it can only tell from the
// query's source address. So each host here is a network namespace of its
// own, joined to the test's namespace by a veth pair, as a real host is
// joined by its network: its per-host server sends from the host's own
// address, as a real one does. (On loopback alone that cannot be shown:
// Linux sends from 127.0.0.1 to every 127.0.0.0/8 destination, whatever
// address the server listens on, so every per-host server would look like
// the same client.) Making namespaces takes root; without it
// TestTwoTierViews skips and TestTwoTierCorefiles still boots both examples
// on loopback.
package twotier

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	// The same CoreDNS build as bin/coredns, for the central server.
	_ "github.com/rollcall/rollcall/internal/corednsbuild"
	"github.com/rollcall/rollcall/test/testkit"
)

// queryEnv makes the test binary a DNS client instead of running tests:
// "ADDR NAME" asks ADDR for NAME's A records and prints the rcode and the
// addresses on one line. The test runs it inside a host's namespace, as a
// program of that host.
const queryEnv = "TWOTIER_QUERY"

func TestMain(m *testing.M) {
	if q := os.Getenv(queryEnv); q != "" {
		os.Exit(queryMain(q))
	}
	os.Exit(m.Run())
}

func queryMain(spec string) int {
	addr, name, ok := strings.Cut(spec, " ")
	if !ok {
		fmt.Fprintf(os.Stderr, "%s=%q: want \"ADDR NAME\"\n", queryEnv, spec)
		return 2
	}
	m, err := testkit.Exchange("udp", addr, "", name, dns.TypeA)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	addrs := testkit.Addrs(m.Answer)
	slices.Sort(addrs)
	fmt.Println(strings.Join(append([]string{dns.RcodeToString[m.Rcode]}, addrs...), " "))
	return 0
}

const webName = "web.infra.example.com."

// The hosts: hosta on vpn0, hostb on vpn1, each with a public address on
// its veth (what its per-host server sends from); hostc, registered only,
// is on both overlays. web runs on all three.
const (
	hostaOverlay = `"vpn0":["10.100.0.1"]`
	hostbOverlay = `"vpn1":["10.200.0.2"]`
	hostcRecord  = `{"name":"hostc","addrs":{"public":["192.0.2.30"],"vpn0":["10.100.0.3"],"vpn1":["10.200.0.3"]}}`
)

// TestTwoTierViews runs the layout with real processes: etcd and the
// central CoreDNS (corefile/two-tier/central.Corefile) in the test's
// namespace, and in each of two host namespaces bin/coredns from
// corefile/two-tier/host.Corefile, asked by a program of that host at
// 127.0.0.1. Each host's programs must get their own host's view: the same
// name answers differently through the two per-host servers, each caching
// its own host's answer. Then the same without hostview on the central
// server: both hosts get the plain rule's public addresses, which is what
// the option is for.
func TestTwoTierViews(t *testing.T) {
	needNamespaces(t)
	coredns := testkit.Binary(t, "coredns")
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	a := newHost(t, "hosta")
	b := newHost(t, "hostb")
	testkit.Put(t, cli, "/rollcall/hosts/hosta/host", fmt.Sprintf(`{"name":"hosta","addrs":{"public":[%q],%s}}`, a.addr, hostaOverlay))
	testkit.Put(t, cli, "/rollcall/hosts/hostb/host", fmt.Sprintf(`{"name":"hostb","addrs":{"public":[%q],%s}}`, b.addr, hostbOverlay))
	testkit.Put(t, cli, "/rollcall/hosts/hostc/host", hostcRecord)
	for _, h := range []string{"hosta", "hostb", "hostc"} {
		testkit.Put(t, cli, "/rollcall/hosts/"+h+"/services/web", fmt.Sprintf(`{"service":"web","host":%q}`, h))
	}
	want := map[string][]string{
		"hosta": sorted("10.100.0.1", b.addr.String(), "10.100.0.3"), // vpn0
		"hostb": sorted(a.addr.String(), "10.200.0.2", "10.200.0.3"), // vpn1
		"plain": sorted(a.addr.String(), b.addr.String(), "192.0.2.30"),
	}
	central := readExample(t, "central.Corefile")

	t.Run("hostview", func(t *testing.T) {
		port := startCentral(t, e.ClientURL, central)
		for _, h := range []*host{a, b} {
			h.startDNS(t, coredns, port)
		}
		for _, h := range []*host{a, b} {
			if got := h.waitWeb(t); !slices.Equal(got, want[h.name]) {
				t.Errorf("%s's programs get web = %v, want %v: %s's view", h.name, got, want[h.name], h.name)
			}
		}
		// Asked again, each per-host server answers from its own cache,
		// still in its own host's view. The answer TTL is 5 s, so at most
		// one entry per host may have expired meanwhile.
		before := centralQueries(t)
		for range 3 {
			for _, h := range []*host{a, b} {
				if got := h.web(t); !slices.Equal(got, want[h.name]) {
					t.Errorf("%s asking again gets web = %v, want %v", h.name, got, want[h.name])
				}
			}
		}
		if n := centralQueries(t) - before; n > 2 {
			t.Errorf("the central server answered %v of 6 repeated queries: the per-host servers do not cache", n)
		}
	})

	t.Run("without hostview", func(t *testing.T) {
		plain := regexp.MustCompile(`(?m)^\s*hostview\s*\n`).ReplaceAllString(central, "")
		if plain == central {
			t.Fatal("corefile/two-tier/central.Corefile has no hostview line")
		}
		port := startCentral(t, e.ClientURL, plain)
		for _, h := range []*host{a, b} {
			h.startDNS(t, coredns, port)
		}
		for _, h := range []*host{a, b} {
			if got := h.waitWeb(t); !slices.Equal(got, want["plain"]) {
				t.Errorf("without hostview %s's programs get web = %v, want the plain rule's %v", h.name, got, want["plain"])
			}
		}
	})
}

// TestTwoTierCorefiles boots both examples on loopback, with no namespaces
// and as any user: the central one against a test etcd, the per-host one
// forwarding to it. Every client is 127.0.0.1 here, a host of no record, so
// the answer is the plain rule's; TestTwoTierViews shows the views.
func TestTwoTierCorefiles(t *testing.T) {
	host := readExample(t, "host.Corefile")
	if strings.Contains(host, "rollcall") {
		t.Fatal("corefile/two-tier/host.Corefile has a rollcall block: a per-host server of the two-tier layout holds no index")
	}
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	testkit.Put(t, cli, "/rollcall/hosts/hostc/host", hostcRecord)
	testkit.Put(t, cli, "/rollcall/hosts/hostc/services/web", `{"service":"web","host":"hostc"}`)
	port := startCentral(t, e.ClientURL, readExample(t, "central.Corefile"))
	_, ports := testkit.StartCoreDNSPorts(t, 1, func(p []int) string {
		return localizeHost(t, host, "127.0.0.1:"+strconv.Itoa(port), p[0])
	})
	m := testkit.Query(t, "udp", "127.0.0.1:"+strconv.Itoa(ports[0]), "", webName, dns.TypeA)
	if got := testkit.Addrs(m.Answer); m.Rcode != dns.RcodeSuccess || !slices.Equal(got, []string{"192.0.2.30"}) {
		t.Fatalf("web through the per-host server: %s %v, want NOERROR [192.0.2.30]\n%v", dns.RcodeToString[m.Rcode], got, m)
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func readExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "corefile", "two-tier", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	endpointLine = regexp.MustCompile(`(?m)^(\s*)endpoint .*$`)
	listenerLine = regexp.MustCompile(`(?m)^\s*(prometheus|ready|health)\b.*\n`)
	port53       = regexp.MustCompile(`(?m)^(\S+):53(\s*\{)`)
	centralFwd   = regexp.MustCompile(`(?m)^(\s*)forward \. 10\.0\.0\.1:53 .*$`)
)

// startCentral starts the central example in this process, moved to etcd
// and a free port (on every address of this namespace, as in the example)
// and without its side listeners, whose fixed ports other tests may hold.
// It returns the port. The server stops when t ends.
func startCentral(t *testing.T, etcd, corefile string) int {
	t.Helper()
	corefile = endpointLine.ReplaceAllString(corefile, "${1}endpoint "+etcd)
	corefile = listenerLine.ReplaceAllString(corefile, "")
	_, ports := testkit.StartCoreDNSPorts(t, 1, func(p []int) string {
		return port53.ReplaceAllString(corefile, "${1}:"+strconv.Itoa(p[0])+"${2}")
	})
	return ports[0]
}

// localizeHost points the per-host example's registry block at central
// (HOST:PORT) and, when port is not 53, moves both blocks to port. The
// other names' forwarding stays as it is, unused.
func localizeHost(t *testing.T, corefile, central string, port int) string {
	t.Helper()
	if !centralFwd.MatchString(corefile) {
		t.Fatalf("corefile/two-tier/host.Corefile: no `forward . 10.0.0.1:53 ...` line to point at the test's central server:\n%s", corefile)
	}
	corefile = centralFwd.ReplaceAllString(corefile, "${1}forward . "+central)
	corefile = listenerLine.ReplaceAllString(corefile, "")
	return port53.ReplaceAllString(corefile, "${1}:"+strconv.Itoa(port)+"${2}")
}

// centralQueries is how many service names rollcall answered in this
// process: only the central server runs rollcall here.
func centralQueries(t *testing.T) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "coredns_rollcall_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == "service" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// needNamespaces skips t unless this process may make network namespaces
// and veth pairs, with the tools that do.
func needNamespaces(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give each host a network namespace of its own (unshare, veth pairs): " +
			"on loopback alone every per-host server sends from 127.0.0.1 and no host can be told from another")
	}
	for _, tool := range []string{"unshare", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (util-linux, iproute2): %v", tool, err)
		}
	}
}

// host is a network namespace standing for one host: a veth pair joins it
// to the test's namespace, which has gw and the host has addr on a /30. A
// sleeping process holds the namespace; when it ends, the namespace and the
// veth pair go with it.
type host struct {
	name     string
	pid      int
	addr, gw netip.Addr
	dns      *testkit.Process
}

func newHost(t *testing.T, name string) *host {
	t.Helper()
	holder := exec.Command("unshare", "--net", "--", "sleep", "infinity")
	// The namespace must not outlive the test, however the test ends.
	holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p, err := testkit.StartProcess(holder)
	if err != nil {
		t.Skipf("cannot make a network namespace: %v", err)
	}
	t.Cleanup(p.Kill)
	h := &host{name: name, pid: p.Cmd.Process.Pid}
	// unshare has made the namespace once the process is sleep.
	testkit.Eventually(t, 5*time.Second, "unshare never became sleep", func() bool {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", h.pid))
		return strings.HasSuffix(exe, "/sleep")
	})

	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	link := "rct" + hex.EncodeToString(suffix[:])
	if out, err := exec.Command("ip", "link", "add", link, "type", "veth", "peer", "name", link+"h").CombinedOutput(); err != nil {
		t.Skipf("cannot make a veth pair (no CAP_NET_ADMIN in this container?): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", link).Run() })
	run(t, "ip", "link", "set", link+"h", "netns", strconv.Itoa(h.pid))
	// A /30 from 198.18.0.0/15 (RFC 2544, for tests), at random so that
	// runs side by side do not collide; taken ones are skipped.
	for try := 0; ; try++ {
		var r [3]byte
		_, _ = rand.Read(r[:])
		base := netip.AddrFrom4([4]byte{198, 18 + r[0]&1, r[1], r[2] &^ 3})
		h.gw, h.addr = base.Next(), base.Next().Next()
		out, err := exec.Command("ip", "addr", "add", h.gw.String()+"/30", "dev", link).CombinedOutput()
		if err == nil {
			break
		}
		if try == 5 {
			t.Fatalf("ip addr add %s/30 dev %s: %v: %s", h.gw, link, err, out)
		}
	}
	run(t, "ip", "link", "set", link, "up")
	h.in(t, "ip", "link", "set", "lo", "up")
	h.in(t, "ip", "addr", "add", h.addr.String()+"/30", "dev", link+"h")
	h.in(t, "ip", "link", "set", link+"h", "up")
	return h
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// in runs a command in the host's namespace.
func (h *host) in(t *testing.T, name string, args ...string) {
	t.Helper()
	run(t, "nsenter", append([]string{"-t", strconv.Itoa(h.pid), "-n", name}, args...)...)
}

// startDNS starts the host's per-host server, bin/coredns from the example
// pointed at the central server (at the host's gateway, which is this
// namespace) on 127.0.0.1:53 of the host. It stops when t ends.
func (h *host) startDNS(t *testing.T, coredns string, centralPort int) {
	t.Helper()
	cf := localizeHost(t, readExample(t, "host.Corefile"), h.gw.String()+":"+strconv.Itoa(centralPort), 53)
	file := filepath.Join(t.TempDir(), "Corefile")
	if err := os.WriteFile(file, []byte(cf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(h.pid), "-n", coredns, "-conf", file)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p, err := testkit.StartProcess(cmd)
	if err != nil {
		t.Fatal(err)
	}
	h.dns = p
	t.Cleanup(func() {
		p.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("%s's CoreDNS:\n%s", h.name, p.Out.Tail(40))
		}
	})
}

// ask runs a program on the host that asks its per-host server for name:
// the rcode and the sorted addresses, or an error.
func (h *host) ask(name string) (string, []string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(h.pid), "-n", self)
	cmd.Env = append(os.Environ(), queryEnv+"=127.0.0.1:53 "+name)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return "", nil, fmt.Errorf("query on %s: %v: %s", h.name, err, stderr)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "", nil, fmt.Errorf("query on %s: no output", h.name)
	}
	return f[0], f[1:], nil
}

// waitWeb waits for the host's per-host server to answer web (it has just
// started) and returns the addresses.
func (h *host) waitWeb(t *testing.T) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if h.dns.Exited() {
			t.Fatalf("%s's CoreDNS exited: %v\n%s", h.name, h.dns.Err(), h.dns.Out.Tail(40))
		}
		rcode, addrs, err := h.ask(webName)
		if err == nil && rcode == "NOERROR" && len(addrs) > 0 {
			return addrs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's per-host server did not answer web within 15 s; last: %s %v %v", h.name, rcode, addrs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// web asks once and fails t unless the answer is NOERROR.
func (h *host) web(t *testing.T) []string {
	t.Helper()
	rcode, addrs, err := h.ask(webName)
	if err != nil || rcode != "NOERROR" {
		t.Fatalf("%s asking for web: %s %v", h.name, rcode, err)
	}
	return addrs
}
