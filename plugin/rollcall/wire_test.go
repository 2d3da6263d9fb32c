package rollcall

import (
	"context"
	"net"
	"testing"

	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/pkg/edns"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

// captureWriter records how the plugin wrote its answer: packed bytes
// (Write) or a message (WriteMsg).
type captureWriter struct {
	test.ResponseWriter
	raw  []byte
	msg  *dns.Msg
	addr net.Addr // fixed client address; else test.ResponseWriter's (made per call)
}

func (w *captureWriter) RemoteAddr() net.Addr {
	if w.addr != nil {
		return w.addr
	}
	return w.ResponseWriter.RemoteAddr()
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.raw = append([]byte(nil), b...)
	return len(b), nil
}

func (w *captureWriter) WriteMsg(m *dns.Msg) error {
	w.msg = m
	return nil
}

// serveWrapped asks h as CoreDNS's server would (through a ScrubWriter) and
// returns the capture.
func serveWrapped(t testing.TB, h *Rollcall, r *dns.Msg, from string, tcp bool) *captureWriter {
	t.Helper()
	cw := &captureWriter{ResponseWriter: test.ResponseWriter{RemoteIP: from, TCP: tcp}}
	if _, err := h.ServeDNS(context.Background(), request.NewScrubWriter(r, cw), r); err != nil {
		t.Fatalf("ServeDNS: %v", err)
	}
	return cw
}

// TestPackedAnswersMatchCases runs every fixture case through the packed
// path (the writer is CoreDNS's own): the bytes unpack to the answer the
// case wants, on UDP and TCP, and are what the message path answers too.
func TestPackedAnswersMatchCases(t *testing.T) {
	hs, terms := fixtureHandlers(t)
	forEachCase(t, func(t *testing.T, c Case, tcp bool) {
		cw := serveWrapped(t, hs[c.Zone], c.Msg(), c.From, tcp)
		if cw.raw == nil {
			t.Fatalf("answer not written packed (WriteMsg: %v)", cw.msg != nil)
		}
		got := new(dns.Msg)
		if err := got.Unpack(cw.raw); err != nil {
			t.Fatalf("packed answer does not unpack: %v", err)
		}
		CheckCase(t, c, got, terms)
		want := serveMsgPath(t, hs[c.Zone], c, tcp)
		if got.Rcode != want.Rcode || got.Truncated != want.Truncated || got.Authoritative != want.Authoritative {
			t.Errorf("packed rcode %d TC %v AA %v, message path %d %v %v", got.Rcode, got.Truncated, got.Authoritative, want.Rcode, want.Truncated, want.Authoritative)
		}
		compare(t, "answer vs message path", texts(got.Answer, c.Zone), texts(want.Answer, c.Zone))
		compare(t, "authority vs message path", texts(got.Ns, c.Zone), texts(want.Ns, c.Zone))
	})
}

// TestPackedOnlyWhenNothingWraps checks when the packed bytes go to the
// connection as they are, and when the plugin hands a dns.Msg on: wrapping
// plugins (log, metrics, rewrite) and CoreDNS's own EDNS0 option handling
// must see a message.
func TestPackedOnlyWhenNothingWraps(t *testing.T) {
	hs, _ := fixtureHandlers(t)
	h := hs[zInfra]
	const supported = 65001 // a local-use option code
	edns.SetSupportedOption(supported)
	tests := []struct {
		name       string
		query      func() *dns.Msg
		wrap       func(dns.ResponseWriter) dns.ResponseWriter // what plugins before this one do to the writer
		wantPacked bool
	}{
		{name: "plain query", query: query("web."+zInfra, nil), wantPacked: true},
		{name: "EDNS0 without options", query: query("web."+zInfra, func(m *dns.Msg) { m.SetEdns0(4096, true) }), wantPacked: true},
		{name: "ECS only", query: query("web."+zInfra, func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(10, 1, 2, 0)})
		}), wantPacked: true},
		{name: "an option CoreDNS copies", query: query("web."+zInfra, func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: supported, Data: []byte{1}})
		}), wantPacked: false},
		{name: "TSIG", query: query("web."+zInfra, func(m *dns.Msg) { m.SetTsig("key.", dns.HmacSHA256, 300, 0) }), wantPacked: false},
		{name: "recorded by log", query: query("web."+zInfra, nil), wrap: func(w dns.ResponseWriter) dns.ResponseWriter {
			return passedTo("rollcall", dnstest.NewRecorder(passedTo("log", w)))
		}, wantPacked: true},
		{name: "recorded by prometheus", query: query("web."+zInfra, nil), wrap: func(w dns.ResponseWriter) dns.ResponseWriter {
			return passedTo("rollcall", passedTo("errors", metrics.NewRecorder(w)))
		}, wantPacked: true},
		{name: "wrapped by a plugin it does not know", query: query("web."+zInfra, nil), wrap: func(w dns.ResponseWriter) dns.ResponseWriter {
			return passedTo("rollcall", otherWriter{passedTo("other", metrics.NewRecorder(w))})
		}, wantPacked: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.query()
			cw := &captureWriter{ResponseWriter: test.ResponseWriter{RemoteIP: fromPublic}}
			var w dns.ResponseWriter = request.NewScrubWriter(r, cw)
			if tt.wrap != nil {
				w = tt.wrap(w)
			}
			if _, err := h.ServeDNS(context.Background(), w, r); err != nil {
				t.Fatalf("ServeDNS: %v", err)
			}
			if packed := cw.raw != nil; packed != tt.wantPacked {
				t.Fatalf("written packed: %v, want %v", packed, tt.wantPacked)
			}
			m := cw.msg
			if tt.wantPacked {
				m = new(dns.Msg)
				if err := m.Unpack(cw.raw); err != nil {
					t.Fatal(err)
				}
			}
			if m == nil || len(m.Answer) != 4 {
				t.Fatalf("answer %v, want web's 4 addresses", m)
			}
			if opt, ropt := m.IsEdns0(), r.IsEdns0(); (opt != nil) != (ropt != nil) {
				t.Errorf("OPT in reply %v, in query %v", opt, ropt)
			} else if opt != nil && (opt.UDPSize() != ropt.UDPSize() || opt.Do() != ropt.Do() || opt.Version() != 0) {
				t.Errorf("OPT %v, want size %d DO %v version 0", opt, ropt.UDPSize(), ropt.Do())
			}
		})
	}
}

func query(name string, opt func(*dns.Msg)) func() *dns.Msg {
	return func() *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.Id = 4242
		if opt != nil {
			opt(m)
		}
		return m
	}
}

// TestQueryPathAllocs keeps allocations off the query path: answering
// through CoreDNS's writer allocates nothing, for every name kind.
func TestQueryPathAllocs(t *testing.T) {
	hs, _ := fixtureHandlers(t)
	h := hs[zInfra]
	w := &captureWriter{addr: &net.UDPAddr{IP: net.ParseIP(fromVPN0), Port: 53000}}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web." + zInfra, dns.TypeA},
		{"web." + zInfra, dns.TypeSRV},
		{"h1.web." + zInfra, dns.TypeA},
		{"h1.web." + zInfra, dns.TypeSRV},
		{"web-master." + zInfra, dns.TypeA},
		{"web-master." + zInfra, dns.TypeTXT},
		{"_http._tcp.web." + zInfra, dns.TypeSRV},
		{"st." + zInfra, dns.TypeSRV},       // weights by state
		{"h3.st." + zInfra, dns.TypeTXT},    // state=critical
		{"down." + zInfra, dns.TypeA},       // failing open, counted
		{"a.st." + zInfra, dns.TypeA},       // shard of served instances
		{"drained." + zInfra, dns.TypeA},    // nothing served: NODATA
		{"p2.maint." + zInfra, dns.TypeTXT}, // state=maintenance
		{"nothing." + zInfra, dns.TypeA},
		{zInfra, dns.TypeSOA},
	} {
		r := new(dns.Msg)
		r.SetQuestion(q.name, q.qtype)
		sw := request.NewScrubWriter(r, w)
		ctx := context.Background()
		allocs := testing.AllocsPerRun(200, func() {
			h.ServeDNS(ctx, sw, r)
		})
		// captureWriter.Write copies the answer: one allocation.
		if allocs > 1 {
			t.Errorf("%s %s: %.0f allocations per query, want none of the plugin's own", q.name, dns.TypeToString[q.qtype], allocs-1)
		}
	}
}

func TestAppendName(t *testing.T) {
	tests := []struct {
		name string
		want string // packed, as a Go string
		ok   bool
	}{
		{name: ".", want: "\x00", ok: true},
		{name: "web.example.", want: "\x03web\x07example\x00", ok: true},
		{name: "WeB.Example.", want: "\x03WeB\x07Example\x00", ok: true},
		{name: `a\.b.example.`, want: "\x03a.b\x07example\x00", ok: true},
		{name: "a..b.", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, ok := appendName(nil, tt.name)
			if ok != tt.ok {
				t.Fatalf("ok %v, want %v", ok, tt.ok)
			}
			if ok && string(b) != tt.want {
				t.Errorf("packed %q, want %q", b, tt.want)
			}
		})
	}
}

// TestECSEcho checks the echoed client subnet: the source prefix as scope,
// address bits past the prefix zeroed, for both families.
func TestECSEcho(t *testing.T) {
	tests := []struct {
		name string
		ecs  dns.EDNS0_SUBNET
		want string
	}{
		{name: "v4 /24", ecs: dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 24, Address: net.IPv4(10, 1, 2, 0)}, want: "10.1.2.0/24/24"},
		{name: "v4 /20 stray bits", ecs: dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 20, Address: net.IPv4(10, 1, 255, 9)}, want: "10.1.240.0/20/20"},
		{name: "v6 /56", ecs: dns.EDNS0_SUBNET{Family: 2, SourceNetmask: 56, Address: net.ParseIP("2001:db8:1:2ff::")}, want: "[2001:db8:1:200::]/56/56"},
		{name: "v4 /0", ecs: dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 0, Address: net.IPv4zero}, want: "0.0.0.0/0/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := len(appendECS(nil, &tt.ecs)); n != ecsLen(&tt.ecs) {
				t.Errorf("length %d, ecsLen says %d", n, ecsLen(&tt.ecs))
			}
			r := new(dns.Msg)
			r.SetQuestion("web."+zInfra, dns.TypeA)
			r.SetEdns0(1232, false)
			pk := getPacker(512)
			pk.header(r, r.Question[0], dns.RcodeSuccess)
			pk.opt(r.IsEdns0(), &tt.ecs)
			pk.finish()
			m := new(dns.Msg)
			if err := m.Unpack(pk.b); err != nil {
				t.Fatalf("echo does not unpack: %v", err)
			}
			var got *dns.EDNS0_SUBNET
			for _, o := range m.IsEdns0().Option {
				got, _ = o.(*dns.EDNS0_SUBNET)
			}
			if got == nil {
				t.Fatalf("no ECS in %v", m)
			}
			if s := got.String(); s != tt.want {
				t.Errorf("echo %s, want %s", s, tt.want)
			}
		})
	}
}
