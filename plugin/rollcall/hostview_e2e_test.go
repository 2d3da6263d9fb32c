package rollcall_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/plugin/rollcall"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestHostviewServed runs the hostview precedence cases over real UDP and
// TCP against CoreDNS and etcd, from the cases' loopback source addresses,
// then changes a host record in etcd and sees the view follow: the map is
// kept up to date by the loader, as the index is.
func TestHostviewServed(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	for _, kv := range rollcall.HostviewKVs() {
		testkit.Put(t, cli, kv.Key, kv.Value)
	}
	// One server block per distinct body, each its own zone.
	zoneOf := map[string]string{}
	var cf strings.Builder
	port := testkit.FreePort(t)
	for _, c := range rollcall.HostviewCases {
		if _, ok := zoneOf[c.Body]; ok {
			continue
		}
		zone := fmt.Sprintf("hv%d.example.", len(zoneOf))
		zoneOf[c.Body] = zone
		fmt.Fprintf(&cf, "%s:%d {\n  rollcall {\n    endpoint %s\n    %s    %s\n  }\n}\n", zone, port, e.ClientURL,
			strings.ReplaceAll(rollcall.HostviewNets, "\n", "\n    "), strings.ReplaceAll(c.Body, "\n", "\n    "))
	}
	testkit.StartCoreDNS(t, cf.String())
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	ask := func(t *testing.T, netw string, c rollcall.HostviewCase) *dns.Msg {
		t.Helper()
		m := c.Msg(zoneOf[c.Body])
		return testkit.Query(t, netw, addr, c.From, m.Question[0].Name, dns.TypeA, func(q *dns.Msg) { q.Extra = m.Extra })
	}
	for _, c := range rollcall.HostviewCases {
		if !netip.MustParseAddr(c.From).IsLoopback() {
			continue // the handler-level test has it: no socket sends from there
		}
		for _, netw := range []string{"udp", "tcp"} {
			t.Run(c.Name+"/"+netw, func(t *testing.T) {
				rollcall.CheckHostview(t, c, ask(t, netw, c))
			})
		}
	}

	// ha moves onto vpn1 as well: its queries get both overlays. Then hx
	// lists ha's address too: nobody's view, the plain rule.
	c := rollcall.HostviewCase{Body: "hostview", From: "127.0.3.1", View: "both"}
	testkit.Put(t, cli, "/rollcall/hosts/ha/host", `{"name":"ha","addrs":{"public":["127.0.3.1"],"vpn0":["10.100.0.1"],"vpn1":["10.200.0.1"]}}`)
	testkit.Eventually(t, 10*time.Second, "ha's new network in its view", func() bool {
		return !hasAddr(ask(t, "udp", c), "127.0.3.2")
	})
	rollcall.CheckHostview(t, c, ask(t, "udp", c))
	testkit.Put(t, cli, "/rollcall/hosts/hx/host", `{"name":"hx","addrs":{"public":["127.0.3.1"]}}`)
	c.View = "none"
	testkit.Eventually(t, 10*time.Second, "an address two hosts list still gets a host's view", func() bool {
		return hasAddr(ask(t, "udp", c), "127.0.3.2")
	})
	rollcall.CheckHostview(t, c, ask(t, "udp", c))
}

func hasAddr(m *dns.Msg, ip string) bool {
	for _, a := range testkit.Addrs(m.Answer) {
		if a == ip {
			return true
		}
	}
	return false
}
