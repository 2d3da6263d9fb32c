package rollcall

import (
	"context"
	"net"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/registry"
)

// fixtureState decodes the fixture as the loader would, with create
// revisions in fixture order, and returns the masters' terms.
func fixtureState(t testing.TB) (*state, map[string]int64) {
	t.Helper()
	st := newState(registry.MustKeys(registry.DefaultPrefix))
	terms := map[string]int64{}
	ch := newChanges()
	for i, kv := range FixtureKVs() {
		rev := int64(i + 1)
		_ = st.put(kv.Key, []byte(kv.Value), rev, ch)
		if k, err := st.keys.Parse(kv.Key); err == nil && k.Kind == registry.KindElection {
			if _, ok := terms[k.Service]; !ok {
				terms[k.Service] = rev
			}
		}
		st.rev = rev
	}
	return st, terms
}

// blockHandler builds the handler of one fixture block, filled from st.
func blockHandler(t testing.TB, zone, body string, st *state) *Rollcall {
	t.Helper()
	c := caddy.NewTestController("dns", "rollcall "+zone+" {\n"+body+"\n}")
	cfg, err := parse(c)
	if err != nil {
		t.Fatalf("parse block %s: %v", zone, err)
	}
	rc := newRollcall(cfg)
	rc.Next = test.ErrorHandler()
	rc.ix.replace(st)
	return rc
}

func fixtureHandlers(t testing.TB) (map[string]*Rollcall, map[string]int64) {
	st, terms := fixtureState(t)
	hs := map[string]*Rollcall{}
	for _, b := range Blocks {
		hs[b.Zone] = blockHandler(t, b.Zone, b.Body, st)
	}
	return hs, terms
}

// forEachCase runs f as a subtest for every fixture case, over UDP and TCP.
func forEachCase(t *testing.T, f func(t *testing.T, c Case, tcp bool)) {
	for _, c := range Cases {
		for _, tcp := range []bool{false, true} {
			name := c.Name + "/udp"
			if tcp {
				name = c.Name + "/tcp"
			}
			t.Run(name, func(t *testing.T) { f(t, c, tcp) })
		}
	}
}

// serveMsgPath answers c's query with h through the message path: CoreDNS's
// test writer, recorded, gets a dns.Msg.
func serveMsgPath(t *testing.T, h *Rollcall, c Case, tcp bool) *dns.Msg {
	t.Helper()
	rec := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: c.From, TCP: tcp})
	if _, err := h.ServeDNS(context.Background(), rec, c.Msg()); err != nil {
		t.Fatalf("ServeDNS: %v", err)
	}
	return rec.Msg
}

func TestServeDNSCases(t *testing.T) {
	hs, terms := fixtureHandlers(t)
	forEachCase(t, func(t *testing.T, c Case, tcp bool) {
		CheckCase(t, c, serveMsgPath(t, hs[c.Zone], c, tcp), terms)
	})
}

func TestServeDNSTTL(t *testing.T) {
	hs, _ := fixtureHandlers(t)
	tests := []struct {
		name, zone, qname string
		qtype             uint16
		want              uint32
	}{
		{name: "answer carries the block ttl", zone: "infra.example.com.", qname: "web.infra.example.com.", qtype: dns.TypeA, want: 7},
		{name: "default ttl", zone: "plain.example.com.", qname: "web.plain.example.com.", qtype: dns.TypeA, want: defaultTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tt.qname, tt.qtype)
			rec := dnstest.NewRecorder(&test.ResponseWriter{})
			hs[tt.zone].ServeDNS(context.Background(), rec, m)
			for _, rr := range rec.Msg.Answer {
				if rr.Header().Ttl != tt.want {
					t.Errorf("%s ttl %d, want %d", rr, rr.Header().Ttl, tt.want)
				}
			}
			m.SetQuestion("nosuch."+tt.zone, dns.TypeA)
			rec = dnstest.NewRecorder(&test.ResponseWriter{})
			hs[tt.zone].ServeDNS(context.Background(), rec, m)
			soa := rec.Msg.Ns[0].(*dns.SOA)
			if soa.Minttl != tt.want || soa.Hdr.Ttl != tt.want {
				t.Errorf("SOA minimum %d ttl %d, want %d", soa.Minttl, soa.Hdr.Ttl, tt.want)
			}
		})
	}
}

func TestServeDNSUDPLimit(t *testing.T) {
	hs, _ := fixtureHandlers(t)
	h := hs["infra.example.com."]
	tests := []struct {
		name    string
		tcp     bool
		edns    uint16
		wantAll bool
	}{
		{name: "udp 512 is cut and TC set", wantAll: false},
		{name: "udp with a large EDNS0 buffer gets all", edns: 4096, wantAll: true},
		{name: "tcp gets all", tcp: true, wantAll: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion("many.infra.example.com.", dns.TypeA)
			if tt.edns > 0 {
				m.SetEdns0(tt.edns, false)
			}
			rec := dnstest.NewRecorder(&test.ResponseWriter{TCP: tt.tcp})
			h.ServeDNS(context.Background(), rec, m)
			got := len(rec.Msg.Answer)
			if tt.wantAll && (got != 60 || rec.Msg.Truncated) {
				t.Errorf("got %d answers, TC %v; want 60 and no TC", got, rec.Msg.Truncated)
			}
			if !tt.wantAll && (got >= 60 || !rec.Msg.Truncated) {
				t.Errorf("got %d answers, TC %v; want fewer and TC", got, rec.Msg.Truncated)
			}
		})
	}
}

func TestServeDNSShuffles(t *testing.T) {
	hs, _ := fixtureHandlers(t)
	firsts := map[string]bool{}
	for i := 0; i < 200 && len(firsts) < 2; i++ {
		m := new(dns.Msg)
		m.SetQuestion("web.infra.example.com.", dns.TypeA)
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		hs["infra.example.com."].ServeDNS(context.Background(), rec, m)
		firsts[rec.Msg.Answer[0].String()] = true
	}
	if len(firsts) < 2 {
		t.Errorf("200 answers all started with the same record: not shuffled")
	}
}

func TestServeDNSOutOfZone(t *testing.T) {
	hs, _ := fixtureHandlers(t)
	m := new(dns.Msg)
	m.SetQuestion("web.example.org.", dns.TypeA)
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	code, _ := hs["infra.example.com."].ServeDNS(context.Background(), rec, m)
	if code != dns.RcodeServerFailure {
		t.Errorf("out of zone went to next with rcode %d, want the error handler's SERVFAIL", code)
	}
}

func TestServeDNSFallthrough(t *testing.T) {
	st, _ := fixtureState(t)
	h := blockHandler(t, "infra.example.com.", "fallthrough", st)
	tests := []struct {
		name, qname string
		wantNext    bool
	}{
		{name: "NXDOMAIN falls through", qname: "nosuch.infra.example.com.", wantNext: true},
		{name: "existing name answered", qname: "web.infra.example.com.", wantNext: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tt.qname, dns.TypeA)
			rec := dnstest.NewRecorder(&test.ResponseWriter{})
			code, _ := h.ServeDNS(context.Background(), rec, m)
			if got := code == dns.RcodeServerFailure; got != tt.wantNext {
				t.Errorf("went to next: %v, want %v", got, tt.wantNext)
			}
		})
	}
}

// benchWriter is a ResponseWriter with a fixed client address that allocates
// nothing itself, so benchmarks count the plugin's allocations only.
type benchWriter struct {
	test.ResponseWriter
	addr net.Addr
}

func (w *benchWriter) RemoteAddr() net.Addr      { return w.addr }
func (w *benchWriter) WriteMsg(m *dns.Msg) error { return nil }

func BenchmarkServeDNS(b *testing.B) {
	hs, _ := fixtureHandlers(b)
	h := hs["infra.example.com."]
	benches := []struct {
		name  string
		qname string
		qtype uint16
		from  string
	}{
		{name: "service/A/public", qname: "web.infra.example.com.", qtype: dns.TypeA, from: "127.0.0.1"},
		{name: "service/A/vpn0", qname: "web.infra.example.com.", qtype: dns.TypeA, from: "127.0.1.5"},
		{name: "service/SRV", qname: "web.infra.example.com.", qtype: dns.TypeSRV, from: "127.0.1.5"},
		{name: "instance/A", qname: "h1.web.infra.example.com.", qtype: dns.TypeA, from: "127.0.1.5"},
		{name: "shard/A", qname: "s2.web.infra.example.com.", qtype: dns.TypeA, from: "127.0.1.5"},
		{name: "port/SRV", qname: "_http._tcp.web.infra.example.com.", qtype: dns.TypeSRV, from: "127.0.1.5"},
		{name: "master/A", qname: "web-master.infra.example.com.", qtype: dns.TypeA, from: "127.0.1.5"},
		{name: "apex/SOA", qname: "infra.example.com.", qtype: dns.TypeSOA, from: "127.0.0.1"},
		{name: "nxdomain", qname: "nosuch.infra.example.com.", qtype: dns.TypeA, from: "127.0.0.1"},
		{name: "mixed-case", qname: "WEB.Infra.Example.COM.", qtype: dns.TypeA, from: "127.0.0.1"},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			m := new(dns.Msg)
			m.SetQuestion(bb.qname, bb.qtype)
			w := &benchWriter{addr: &net.UDPAddr{IP: net.ParseIP(bb.from), Port: 5353}}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.ServeDNS(ctx, w, m)
			}
		})
	}
}

// TestMaxAnswersHandler: under `max_answers N` every kind of answer with
// several instances holds at most N of them (an SRV answer: the ports of N
// instances, with the additional records of those targets only), and a
// service of N or fewer instances answers in full.
func TestMaxAnswersHandler(t *testing.T) {
	one := FixtureBlock(t, zInfra, "max_answers 1")
	four := FixtureBlock(t, zInfra, "max_answers 4")
	targets := func(m *dns.Msg) map[string]bool {
		hosts := map[string]bool{}
		for _, rr := range m.Answer {
			if srv, ok := rr.(*dns.SRV); ok {
				hosts[srv.Target] = true
			}
		}
		for _, rr := range m.Extra {
			if !hosts[rr.Header().Name] {
				t.Errorf("additional %s: not a target of the answer %v", rr, m.Answer)
			}
		}
		return hosts
	}
	for i := 0; i < 20; i++ {
		ask := func(h *Rollcall, name string, qtype uint16) *dns.Msg {
			c := infra(name, qtype, fromPublic, ok, nil)
			return serveMsgPath(t, h, c, false)
		}
		if m := ask(one, "web", dns.TypeA); len(m.Answer) != 1 {
			t.Fatalf("web A under max_answers 1: %v", m.Answer)
		}
		if m := ask(one, "s1.web", dns.TypeA); len(m.Answer) != 1 {
			t.Fatalf("shard s1 A under max_answers 1: %v", m.Answer)
		}
		if m := ask(one, "web", dns.TypeSRV); len(targets(m)) != 1 {
			t.Fatalf("web SRV under max_answers 1: %v", m.Answer)
		}
		if m := ask(one, "_http._tcp.web", dns.TypeSRV); len(m.Answer) != 1 || len(targets(m)) != 1 {
			t.Fatalf("port SRV under max_answers 1: %v", m.Answer)
		}
		if m := ask(four, "web", dns.TypeA); len(m.Answer) != 4 {
			t.Fatalf("web A (4 instances) under max_answers 4: %v", m.Answer)
		}
	}
}
