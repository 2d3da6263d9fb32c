package servicereg

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	// The rollcall plugin, registered with CoreDNS for testkit.StartCoreDNS.
	_ "github.com/rollcall/rollcall/internal/corednsbuild"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestDNSFollowsHealth runs every part for real: healthd under the test's
// systemd user manager with an http, a tcp, a grpc and an exec check, this
// package's agent, etcd, and CoreDNS with the rollcall plugin answering two
// zones, one failing open (the default) and one with `fail_open off`. DNS
// follows each transition the checks, a drain and the unit's stop make:
// critical at start (left out, or served failing open), passing, warning
// (SRV weight 1), critical again, draining (never served, not even failing
// open), and gone.
func TestDNSFollowsHealth(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.Setenv(t)
	e := testkit.StartEtcd(t)
	const open, closed = "open.test.", "closed.test."
	port := testkit.FreePort(t)
	testkit.StartCoreDNS(t, fmt.Sprintf("%s:%d {\n  bind 127.0.0.1\n  rollcall {\n    endpoint %s\n  }\n}\n%s:%d {\n  bind 127.0.0.1\n  rollcall {\n    endpoint %s\n    fail_open off\n  }\n}\n",
		open, port, e.ClientURL, closed, port, e.ClientURL))
	server := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	d := startHealthd(t, sd, "web")
	cfg := userConfig(e, 10*time.Second, Service{Name: "web", Unit: d.unit,
		Ports:  []registry.Port{{Name: "http", Port: 8080, Proto: "tcp"}},
		Checks: d.checks(200*time.Millisecond, 2, 2)})
	cfg.Addrs = registry.Addrs{"public": {netip.MustParseAddr("192.0.2.50")}}
	cfg.Control = filepath.Join(t.TempDir(), "control.sock")
	a, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	serveControl(t, a)

	const (
		addr    = "A 192.0.2.50"
		srv     = "SRV 10 10 8080 h1.web.Z"
		srvWarn = "SRV 10 1 8080 h1.web.Z"
	)
	// expect waits until name in zone answers qtype with rcode and exactly
	// want ("TYPE rdata" with the zone written Z, any order).
	expect := func(step, zone, name string, qtype uint16, rcode int, want ...string) {
		t.Helper()
		slices.Sort(want)
		msg := fmt.Sprintf("%s: %s.%s %s should answer %s %q", step, name, zone, dns.TypeToString[qtype], dns.RcodeToString[rcode], want)
		testkit.EventuallySaw(t, wait, msg, func() (bool, string) {
			m, err := testkit.Exchange("udp", server, "", name+"."+zone, qtype)
			if err != nil {
				return false, err.Error()
			}
			rrs := make([]string, 0, len(m.Answer))
			for _, rr := range m.Answer {
				rdata := strings.TrimSpace(strings.TrimPrefix(rr.String(), rr.Header().String()))
				rrs = append(rrs, dns.TypeToString[rr.Header().Rrtype]+" "+strings.ReplaceAll(rdata, zone, "Z"))
			}
			slices.Sort(rrs)
			return m.Rcode == rcode && slices.Equal(rrs, want), fmt.Sprintf("%s %q", dns.RcodeToString[m.Rcode], rrs)
		})
	}
	txt := func(st registry.State) string { return `TXT "state=` + string(st) + `"` }
	noError := dns.RcodeSuccess

	// Registered critical at once: left out where the block fails closed,
	// served where it fails open (the only instance), its own name answers.
	expect("critical at start", closed, "h1.web", dns.TypeTXT, noError, txt(registry.StateCritical))
	expect("critical at start", closed, "web", dns.TypeA, noError)
	expect("critical at start", open, "web", dns.TypeA, noError, addr)
	expect("critical at start", closed, "h1.web", dns.TypeA, noError, addr)

	touch(t, d.ready)
	touch(t, d.execOK)
	expect("passing", closed, "h1.web", dns.TypeTXT, noError, txt(registry.StatePassing))
	expect("passing", closed, "web", dns.TypeA, noError, addr)
	expect("passing", closed, "_http._tcp.web", dns.TypeSRV, noError, srv)

	touch(t, d.busy) // GET /ready answers 429
	expect("warning", closed, "h1.web", dns.TypeTXT, noError, txt(registry.StateWarning))
	expect("warning", closed, "_http._tcp.web", dns.TypeSRV, noError, srvWarn)
	expect("warning", closed, "web", dns.TypeA, noError, addr)
	remove(t, d.busy)
	expect("passing after warning", closed, "_http._tcp.web", dns.TypeSRV, noError, srv)

	remove(t, d.ready)
	expect("critical", closed, "h1.web", dns.TypeTXT, noError, txt(registry.StateCritical))
	expect("critical", closed, "web", dns.TypeA, noError)
	expect("critical", open, "web", dns.TypeA, noError, addr)

	touch(t, d.ready)
	expect("passing again", closed, "web", dns.TypeA, noError, addr)
	mustDrain(t, cfg.Control, OpDrain, "web")
	expect("draining", closed, "h1.web", dns.TypeTXT, noError, txt(registry.StateDraining))
	expect("draining", closed, "web", dns.TypeA, noError)
	expect("draining", open, "web", dns.TypeA, noError)
	expect("draining", open, "h1.web", dns.TypeA, noError, addr)
	mustDrain(t, cfg.Control, OpUndrain, "web")
	expect("undrained", open, "web", dns.TypeA, noError, addr)
	expect("undrained", closed, "web", dns.TypeA, noError, addr)

	sd.Systemctl("stop", d.unit)
	expect("stopped", closed, "h1.web", dns.TypeA, dns.RcodeNameError)
	expect("stopped", open, "web", dns.TypeA, dns.RcodeNameError)
}
