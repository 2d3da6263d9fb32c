package resolvers

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/test/testkit"
)

// resolver is a recursive resolver running as a process in front of
// CoreDNS, listening on addr (UDP and TCP).
type resolver struct {
	name string
	addr string // 127.0.0.1:port
	proc *testkit.Process
}

// need returns the path of a resolver binary from Debian's packages, or
// skips the test naming what is missing: `make test` installs them when it
// runs as root. /usr/sbin is looked at too, since it may not be on a
// non-root PATH.
func need(t *testing.T, bin, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", bin); isExec(p) {
		return p
	}
	t.Skipf("%s is not installed (Debian package %s): `make test` as root installs it, or apt-get install %s", bin, pkg, pkg)
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// startResolver runs the command that cmd builds for a free port on
// 127.0.0.1 and waits until the resolver answers NOERROR for the SOA of
// probe, a zone it resolves through CoreDNS. A port taken meanwhile (the
// resolver says so and exits) is retried with a new one.
func startResolver(t *testing.T, name, probe string, cmd func(port int) *exec.Cmd) *resolver {
	t.Helper()
	for try := 0; ; try++ {
		port := testkit.FreePort(t)
		p, err := testkit.StartProcess(cmd(port))
		if err != nil {
			t.Fatal(err)
		}
		r := &resolver{name: name, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), proc: p}
		up := waitUp(p, func() bool {
			m, err := testkit.Exchange("udp", r.addr, "", probe, dns.TypeSOA)
			return err == nil && m.Rcode == dns.RcodeSuccess
		})
		if up {
			t.Cleanup(func() {
				p.Stop(10 * time.Second)
				if t.Failed() {
					t.Logf("%s (%s) output:\n%s", name, r.addr, p.Out.Tail(6000))
				}
			})
			return r
		}
		p.Stop(5 * time.Second)
		// unbound and Go say "address already in use", dnsmasq and
		// BIND "address in use".
		out := strings.ToLower(p.Out.String())
		if try < 3 && (strings.Contains(out, "address already in use") || strings.Contains(out, "address in use")) {
			continue
		}
		t.Fatalf("%s did not answer for %s on %s (exited: %v, %v):\n%s", name, probe, r.addr, p.Exited(), p.Err(), p.Out.Tail(6000))
	}
}

// writeFile writes a config file into dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// unboundOpts configures startUnbound.
type unboundOpts struct {
	// subnet turns on the subnetcache module: client subnets (from the
	// query's ECS option, else from the client's address) are forwarded to
	// CoreDNS, cut to a /24 or /56, and answers are cached per scope.
	subnet bool
}

// startUnbound runs unbound with rollcall's zone as a stub zone at
// upstream (CoreDNS). Every other name is forwarded there too (CoreDNS
// refuses it), so unbound never asks a root server: nothing leaves
// loopback, and outgoing-interface pins its source to 127.0.0.1. No
// validator module, and the zone is declared insecure besides; unbound
// refuses to query 127.0.0.0/8 unless told (do-not-query-localhost).
func startUnbound(t *testing.T, upstream *coreDNS, o unboundOpts) *resolver {
	t.Helper()
	bin := need(t, "unbound", "unbound")
	dir := t.TempDir()
	name := "unbound"
	modules := "iterator"
	var subnet string
	if o.subnet {
		name = "unbound-subnetcache"
		modules = "subnetcache iterator"
		// send-client-subnet lists the upstreams that get ECS at all;
		// client-subnet-always-forward forwards a client's own ECS option
		// even so (and skips the global cache for such a query).
		subnet = `    send-client-subnet: 127.0.0.1
    client-subnet-always-forward: yes
    max-client-subnet-ipv4: 24
    max-client-subnet-ipv6: 56
`
	}
	return startResolver(t, name, zone, func(port int) *exec.Cmd {
		conf := fmt.Sprintf(`server:
    directory: "%[1]s"
    chroot: ""
    username: ""
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    so-reuseport: no
    interface: 127.0.0.1@%[2]d
    port: %[2]d
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    outgoing-interface: 127.0.0.1
    outgoing-range: 64
    num-queries-per-thread: 32
    msg-cache-size: 4m
    rrset-cache-size: 4m
    do-not-query-localhost: no
    module-config: "%[3]s"
    domain-insecure: "%[4]s"
%[5]sremote-control:
    control-enable: no
stub-zone:
    name: "%[4]s"
    stub-addr: 127.0.0.1@%[6]d
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@%[6]d
`, dir, port, modules, zone, subnet, upstream.port)
		path := writeFile(t, dir, fmt.Sprintf("unbound-%d.conf", port), conf)
		return exec.Command(bin, "-d", "-c", path)
	})
}

// startDnsmasq runs dnsmasq forwarding the zone to upstream and nothing
// else (no upstream servers from resolv.conf, no /etc/hosts, no config
// file: other names are REFUSED). --user=root keeps the invoking user
// rather than switching to a "dnsmasq" user a bare dnsmasq-base install may
// lack; --log-queries shows, in a failed test's log, what dnsmasq answered
// from its cache. addSubnet, when set, is dnsmasq's --add-subnet argument.
func startDnsmasq(t *testing.T, upstream *coreDNS, addSubnet string) *resolver {
	t.Helper()
	bin := need(t, "dnsmasq", "dnsmasq-base")
	name := "dnsmasq"
	if addSubnet != "" {
		name = "dnsmasq-add-subnet"
	}
	return startResolver(t, name, zone, func(port int) *exec.Cmd {
		args := []string{
			"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
			"--port=" + strconv.Itoa(port), "--listen-address=127.0.0.1", "--bind-interfaces",
			"--server=/" + strings.TrimSuffix(zone, ".") + "/127.0.0.1#" + strconv.Itoa(upstream.port),
			"--cache-size=1000", "--pid-file=", "--log-facility=-", "--log-queries", "--user=root",
		}
		if addSubnet != "" {
			args = append(args, "--add-subnet="+addSubnet)
		}
		return exec.Command(bin, args...)
	})
}

// startNamed runs BIND's named with each zone of forwards (zone name to
// CoreDNS) as a forward zone. Everything else is forwarded to one of them
// too (forward only), so named never primes from root servers, and
// query-source pins its source to 127.0.0.1. No control channel (parallel
// nameds would fight over port 953), no DNSSEC validation. named listens
// only on addresses an interface has, hence 127.0.0.1 and not another
// address of 127.0.0.0/8.
func startNamed(t *testing.T, forwards map[string]*coreDNS) *resolver {
	t.Helper()
	bin := need(t, "named", "bind9")
	dir := t.TempDir()
	var zones strings.Builder
	var first *coreDNS
	var probe string
	for z, c := range forwards {
		if first == nil || z == zone {
			first, probe = c, z
		}
		fmt.Fprintf(&zones, "zone %q { type forward; forward only; forwarders { 127.0.0.1 port %d; }; };\n", z, c.port)
	}
	return startResolver(t, "named", probe, func(port int) *exec.Cmd {
		conf := fmt.Sprintf(`options {
    directory "%[1]s";
    pid-file none;
    session-keyfile none;
    listen-on port %[2]d { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion yes;
    allow-query { 127.0.0.0/8; };
    allow-recursion { 127.0.0.0/8; };
    dnssec-validation no;
    forwarders { 127.0.0.1 port %[3]d; };
    forward only;
    query-source address 127.0.0.1;
    notify no;
    max-cache-size 32m;
};
controls { };
%[4]s`, dir, port, first.port, zones.String())
		path := writeFile(t, dir, fmt.Sprintf("named-%d.conf", port), conf)
		return exec.Command(bin, "-g", "-4", "-n", "1", "-c", path)
	})
}
