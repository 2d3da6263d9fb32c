package testkit

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	// Importing dnsserver registers the dns server type for caddy.Start.
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/miekg/dns"
)

var caddyMu sync.Mutex

// CoreDNS is a CoreDNS server running in this process from a Corefile.
type CoreDNS struct {
	Instance *caddy.Instance
	UDP, TCP string // addresses of the first server block
}

// StartCoreDNS starts CoreDNS from corefile in this process and stops it when
// the test ends, failing the test when a plugin's OnShutdown does. The plugins
// the Corefile names must be registered (imported) and in
// dnsserver.Directives: a test importing
// github.com/rollcall/rollcall/internal/corednsbuild gets rollcall's build.
// Use port 0 in the Corefile ("example.org:0") for a free port.
func StartCoreDNS(t testing.TB, corefile string) *CoreDNS {
	t.Helper()
	c, err := NewCoreDNS(corefile)
	if err != nil {
		t.Fatalf("%v\nCorefile:\n%s", err, corefile)
	}
	closeAtEnd(t, c)
	return c
}

// NewCoreDNS is StartCoreDNS returning the error; the caller stops the
// server with Close.
func NewCoreDNS(corefile string) (*CoreDNS, error) {
	caddyMu.Lock()
	caddy.Quiet = true
	dnsserver.Quiet = true
	inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "Corefile", ServerTypeName: "dns"})
	caddyMu.Unlock()
	if err != nil {
		if inst != nil {
			// Plugins may have started (OnStartup) before a listener
			// failed: let them release what they hold.
			inst.ShutdownCallbacks()
			_ = inst.Stop()
		}
		return nil, fmt.Errorf("start CoreDNS: %w", err)
	}
	c := &CoreDNS{Instance: inst}
	if srvs := inst.Servers(); len(srvs) > 0 {
		if a := srvs[0].LocalAddr(); a != nil {
			c.UDP = a.String()
		}
		if a := srvs[0].Addr(); a != nil {
			c.TCP = a.String()
		}
	}
	return c, nil
}

// closeAtEnd stops c when the test ends and reports what its plugins'
// OnShutdown callbacks return.
func closeAtEnd(t testing.TB, c *CoreDNS) {
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("stop CoreDNS: %v", err)
		}
	})
}

// Stop stops the server; safe to call twice. Close says what went wrong.
func (c *CoreDNS) Stop() { _ = c.Close() }

// Close stops the server and runs its plugins' OnShutdown callbacks, and
// returns their errors; safe to call twice (the second time does nothing).
// caddy's Stop alone does not run the callbacks (a process exit would): a
// plugin releases its etcd watch in them.
func (c *CoreDNS) Close() error {
	caddyMu.Lock()
	defer caddyMu.Unlock()
	if c.Instance == nil {
		return nil
	}
	err := c.Instance.Stop()
	c.Instance.Wait()
	err = errors.Join(append([]error{err}, c.Instance.ShutdownCallbacks()...)...)
	c.Instance = nil
	return err
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
