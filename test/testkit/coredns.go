package testkit

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"

	// The dns server type must be registered for caddy.Start to know it.
	_ "github.com/coredns/coredns/core/dnsserver"
)

var caddyMu sync.Mutex

// CoreDNS is a CoreDNS server running in this process from a Corefile.
type CoreDNS struct {
	Instance *caddy.Instance
	UDP, TCP string // addresses of the first server block
}

// StartCoreDNS starts CoreDNS from corefile in this process and stops it when
// the test ends. The plugins the Corefile names must be registered (imported)
// and in dnsserver.Directives: a test importing
// github.com/rollcall/rollcall/internal/corednsbuild gets rollcall's build.
// Use port 0 in the Corefile ("example.org:0") for a free port.
func StartCoreDNS(t testing.TB, corefile string) *CoreDNS {
	t.Helper()
	c, err := tryStartCoreDNS(corefile)
	if err != nil {
		t.Fatalf("%v\nCorefile:\n%s", err, corefile)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

// Stop stops the server; safe to call twice.
func (c *CoreDNS) Stop() {
	caddyMu.Lock()
	defer caddyMu.Unlock()
	if c.Instance != nil {
		c.Instance.Stop()
		c.Instance.Wait()
		// caddy's Stop does not run the plugins' OnShutdown callbacks (a
		// process exit would); run them so a plugin releases its etcd watch.
		c.Instance.ShutdownCallbacks()
		c.Instance = nil
	}
}

// Query sends one question to addr over net ("udp" or "tcp") from source
// address from (a 127.0.0.0/8 address poses as a client on another network;
// "" means any).
func Query(t testing.TB, netw, addr, from, name string, qtype uint16, opts ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	r, err := Exchange(netw, addr, from, name, qtype, opts...)
	if err != nil {
		t.Fatalf("query %s %s over %s from %s: %v", name, dns.TypeToString[qtype], netw, from, err)
	}
	return r
}

// Exchange is Query returning the error instead of failing the test.
func Exchange(netw, addr, from, name string, qtype uint16, opts ...func(*dns.Msg)) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	for _, o := range opts {
		o(m)
	}
	c := &dns.Client{Net: netw, Timeout: 5 * time.Second}
	if from != "" {
		ip := net.ParseIP(from)
		d := &net.Dialer{Timeout: 5 * time.Second}
		if netw == "tcp" {
			d.LocalAddr = &net.TCPAddr{IP: ip}
		} else {
			d.LocalAddr = &net.UDPAddr{IP: ip}
		}
		c.Dialer = d
	}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// WithEDNS0 sets an EDNS0 OPT record with the given UDP buffer size.
func WithEDNS0(size uint16) func(*dns.Msg) {
	return func(m *dns.Msg) { m.SetEdns0(size, false) }
}

// WithECS adds an EDNS0 client subnet option for ip/bits.
func WithECS(ip string, bits uint8) func(*dns.Msg) {
	return func(m *dns.Msg) {
		o := m.IsEdns0()
		if o == nil {
			m.SetEdns0(1232, false)
			o = m.IsEdns0()
		}
		a := net.ParseIP(ip)
		e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, SourceNetmask: bits, Address: a}
		if a.To4() != nil {
			e.Family = 1
			e.Address = a.To4()
		} else {
			e.Family = 2
		}
		o.Option = append(o.Option, e)
	}
}

// Addrs returns the addresses of the A and AAAA records among rrs, in order.
func Addrs(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch r := rr.(type) {
		case *dns.A:
			out = append(out, r.A.String())
		case *dns.AAAA:
			out = append(out, r.AAAA.String())
		}
	}
	return out
}
