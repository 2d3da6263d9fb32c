package rollcall_test

// Issue #7, fuzzing through the plugin: whole DNS packets and query names go
// through the handler of every fixture block, as CoreDNS would pass them
// (wrapped in its ScrubWriter, and behind prometheus, errors and log) and
// bare. Whatever comes in, the handler must not panic and must either pass
// the query on, leave a SERVFAIL-like rcode for CoreDNS to write, or write
// exactly one well-formed reply; a reply that went out packed past the
// recorders must have left them what a dns.Msg of it would have.

import (
	"context"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/plugin/rollcall"
	"github.com/rollcall/rollcall/registry"
)

// fuzzWriter records what the handler writes. It takes both ways out: a
// dns.Msg (WriteMsg, packed here as the server would) and packed bytes
// (Write, copied: the handler may reuse its buffer).
type fuzzWriter struct {
	remote net.Addr
	writes [][]byte
	errs   []error
	next   bool // the query went to the next plugin
	packed bool // a reply came through Write
}

func (w *fuzzWriter) LocalAddr() net.Addr {
	if _, ok := w.remote.(*net.TCPAddr); ok {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 53), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 53), Port: 53}
}
func (w *fuzzWriter) RemoteAddr() net.Addr { return w.remote }

func (w *fuzzWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		w.errs = append(w.errs, err)
		return err
	}
	w.writes = append(w.writes, b)
	return nil
}

func (w *fuzzWriter) Write(b []byte) (int, error) {
	w.packed = true
	w.writes = append(w.writes, append([]byte(nil), b...))
	return len(b), nil
}

func (w *fuzzWriter) Close() error          { return nil }
func (w *fuzzWriter) TsigStatus() error     { return nil }
func (w *fuzzWriter) TsigTimersOnly(bool)   {}
func (w *fuzzWriter) Hijack()               {}
func (w *fuzzWriter) isTCP() bool           { _, ok := w.remote.(*net.TCPAddr); return ok }
func (w *fuzzWriter) String() string        { return w.remote.String() }
func (w *fuzzWriter) reset(remote net.Addr) { *w = fuzzWriter{remote: remote} }

// fuzzKey carries the query's fuzzWriter in the context, to the next
// handler (CoreDNS wraps the writer on the way).
type fuzzKey struct{}

// nextHandler stands for the plugins after rollcall: it notes that the query
// reached it and writes nothing.
var nextHandler = plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	ctx.Value(fuzzKey{}).(*fuzzWriter).next = true
	return dns.RcodeSuccess, nil
})

// fuzzHandler is a block's handler, the zones it answers and its ttl.
type fuzzHandler struct {
	name  string
	zones []string
	ttl   uint32
	h     *rollcall.Rollcall
}

func fuzzHandlers(tb testing.TB) []fuzzHandler {
	var hs []fuzzHandler
	for _, b := range rollcall.Blocks {
		ttl := uint32(5) // the plugin's default
		if b.Zone == "infra.example.com." {
			ttl = 7 // `ttl 7` in its block
		}
		hs = append(hs, fuzzHandler{name: b.Zone, zones: []string{b.Zone}, ttl: ttl, h: rollcall.FixtureHandler(tb, b.Zone)})
	}
	hs = append(hs, fuzzHandler{name: "fallthrough", zones: []string{"infra.example.com.", "example.org."}, ttl: 9,
		h: rollcall.FixtureBlock(tb, "infra.example.com. example.org.", "ttl 9\nfallthrough infra.example.com.\nnetwork vpn0 127.0.1.0/24")})
	for _, h := range hs {
		h.h.Next = nextHandler
	}
	return hs
}

// Client source addresses, posing as the fixture's networks (fixture_test.go).
var fuzzFrom = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("127.0.1.5"), net.ParseIP("127.0.2.5"), net.ParseIP("::1")}

// Bits of the fuzz input's flags byte.
const (
	flagTCP   = 1 << 0 // bits 1-2: index into fuzzFrom
	flagEDNS  = 1 << 3 // the name query carries an OPT record
	flagECS   = 1 << 4 // ... with a client subnet option
	flagDO    = 1 << 5 // ... with the DO bit
	flagChaos = 1 << 6 // the name query asks class CH
)

// nameQuery builds a query for name and qtype as a client would send it;
// nil when it cannot be sent (not a valid name).
func nameQuery(name string, qtype uint16, flags byte) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0x5eed ^ qtype
	if flags&flagChaos != 0 {
		m.Question[0].Qclass = dns.ClassCHAOS
	}
	if flags&(flagEDNS|flagECS|flagDO) != 0 {
		m.SetEdns0(1232, flags&flagDO != 0)
	}
	if flags&flagECS != 0 {
		o := m.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(10, 200, 7, 0).To4()})
	}
	// What the server hands the handler has been through the wire.
	b, err := m.Pack()
	if err != nil {
		return nil
	}
	r := new(dns.Msg)
	if r.Unpack(b) != nil {
		return nil
	}
	return r
}

// The rcodes a rollcall reply may carry.
var fuzzRcodes = map[int]bool{
	dns.RcodeSuccess: true, dns.RcodeNameError: true, dns.RcodeRefused: true,
	dns.RcodeServerFailure: true, dns.RcodeFormatError: true, dns.RcodeNotImplemented: true,
}

func FuzzServeDNS(f *testing.F) {
	// The committed corpus (testdata/fuzz/FuzzServeDNS) holds the packets;
	// these add the names of every fixture case.
	for _, c := range rollcall.Cases {
		var flags byte
		if c.ECS != "" {
			flags |= flagECS
		}
		f.Add([]byte(nil), c.FQDN(), c.QType, flags)
	}
	hs := fuzzHandlers(f)
	good := fixtureAddrs(f)
	f.Fuzz(func(t *testing.T, packet []byte, name string, qtype uint16, flags byte) {
		var reqs []*dns.Msg
		if m := new(dns.Msg); len(packet) > 0 && m.Unpack(packet) == nil {
			reqs = append(reqs, m)
		}
		if m := nameQuery(name, qtype, flags); m != nil {
			reqs = append(reqs, m)
		}
		ip := fuzzFrom[int(flags>>1)&3]
		var remote net.Addr = &net.UDPAddr{IP: ip, Port: 40000}
		if flags&flagTCP != 0 {
			remote = &net.TCPAddr{IP: ip, Port: 40000}
		}
		w := &fuzzWriter{}
		ctx := context.WithValue(context.Background(), fuzzKey{}, w)
		for _, r := range reqs {
			for _, h := range hs {
				for _, how := range []string{"scrub", "bare", "recorded"} {
					w.reset(remote)
					// The handler must not depend on the request staying
					// as it was; give each run its own copy.
					req := r.Copy()
					var (
						rw  dns.ResponseWriter = w
						mr  *metrics.Recorder
						lr  *dnstest.Recorder
						via = how != "bare"
					)
					switch how {
					case "scrub":
						rw = request.NewScrubWriter(req, w)
					case "recorded":
						rw, mr, lr = rollcall.DeployedWriters(request.NewScrubWriter(req, w), true)
					}
					rcode, err := h.h.ServeDNS(ctx, rw, req)
					checkServed(t, h, good, r, w, via, rcode, err)
					if mr != nil && w.packed {
						checkRecorded(t, w.writes[0], mr, lr, r)
					}
				}
			}
		}
	})
}

// checkServed checks the outcome of one query of r through h.
func checkServed(t *testing.T, h fuzzHandler, good map[string]bool, r *dns.Msg, w *fuzzWriter, scrub bool, rcode int, err error) {
	t.Helper()
	where := func() string {
		how := "bare writer"
		if scrub {
			how = "ScrubWriter (or recorders on it)"
		}
		return h.name + ", " + how + ", from " + w.String() + ", query:\n" + r.String()
	}
	if err != nil {
		t.Fatalf("ServeDNS error %v (%s)", err, where())
	}
	if len(w.errs) > 0 {
		t.Fatalf("reply does not pack: %v (%s)", w.errs, where())
	}
	switch {
	case w.next:
		if len(w.writes) > 0 {
			t.Fatalf("wrote a reply and passed the query on (%s)", where())
		}
		return
	case len(w.writes) == 0:
		// CoreDNS writes the reply for these rcodes itself.
		if plugin.ClientWrite(rcode) {
			t.Fatalf("returned %s without writing a reply (%s)", dns.RcodeToString[rcode], where())
		}
		return
	case len(w.writes) > 1:
		t.Fatalf("%d replies to one query (%s)", len(w.writes), where())
	case !plugin.ClientWrite(rcode):
		t.Fatalf("wrote a reply and returned %s, so CoreDNS writes another (%s)", dns.RcodeToString[rcode], where())
	}
	b := w.writes[0]
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("reply does not unpack: %v (%s)", err, where())
	}
	if m.Id != r.Id || !m.Response || m.Opcode != r.Opcode {
		t.Fatalf("reply id %d response %v opcode %d, want id %d, response, opcode %d (%s)\nreply:\n%v", m.Id, m.Response, m.Opcode, r.Id, r.Opcode, where(), m)
	}
	if len(m.Question) != 1 || len(r.Question) == 0 || m.Question[0] != r.Question[0] {
		t.Fatalf("question %v, want %v echoed (%s)", m.Question, r.Question, where())
	}
	if !fuzzRcodes[m.Rcode] {
		t.Fatalf("rcode %s (%s)", dns.RcodeToString[m.Rcode], where())
	}
	if scrub {
		// As CoreDNS sends it: within the client's buffer, with an OPT
		// record when the query had one.
		limit := dns.MaxMsgSize
		if !w.isTCP() {
			limit = dns.MinMsgSize
			if o := r.IsEdns0(); o != nil && int(o.UDPSize()) > limit {
				limit = int(o.UDPSize())
			}
		}
		if len(b) > limit {
			t.Fatalf("reply of %d bytes, the client takes %d (%s)", len(b), limit, where())
		}
		if r.IsEdns0() != nil && m.IsEdns0() == nil {
			t.Fatalf("no OPT record in the reply to a query with one (%s)\nreply:\n%v", where(), m)
		}
	}
	if m.Truncated && w.isTCP() {
		t.Fatalf("TC set over TCP (%s)", where())
	}
	if (m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError) && !m.Authoritative {
		t.Fatalf("AA not set on %s (%s)", dns.RcodeToString[m.Rcode], where())
	}
	// NXDOMAIN and NODATA carry the zone's SOA.
	negative := m.Rcode == dns.RcodeNameError || m.Rcode == dns.RcodeSuccess && len(m.Answer) == 0 && !m.Truncated
	if negative && (len(m.Answer) != 0 || len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA) {
		t.Fatalf("negative answer without just the SOA in authority (%s)\nreply:\n%v", where(), m)
	}
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			if !inZones(rr.Header().Name, h.zones) {
				t.Fatalf("record %s outside the block's zones (%s)", rr, where())
			}
			if rr.Header().Ttl != h.ttl || rr.Header().Class != dns.ClassINET {
				t.Fatalf("record %s: want class IN and the block's ttl %d (%s)", rr, h.ttl, where())
			}
			// Only addresses of good fixture records are ever served.
			var ip net.IP
			switch rr := rr.(type) {
			case *dns.A:
				ip = rr.A
			case *dns.AAAA:
				ip = rr.AAAA
			}
			if ip != nil && !good[ip.String()] {
				t.Fatalf("record %s: not an address of a good fixture record (%s)", rr, where())
			}
		}
	}
}

// checkRecorded checks what a packed reply b to r left the recorders of
// prometheus (mr) and log (lr): what they would have noted of it as a
// dns.Msg, which is b unpacked, measured without the OPT record CoreDNS
// adds to a dns.Msg (unless it carries the client subnet echo, which the
// plugin's own dns.Msg has).
func checkRecorded(t *testing.T, b []byte, mr *metrics.Recorder, lr *dnstest.Recorder, r *dns.Msg) {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	asMsg := m.Copy()
	if o := asMsg.IsEdns0(); o != nil && !slices.ContainsFunc(o.Option, func(e dns.EDNS0) bool { return e.Option() == dns.EDNS0SUBNET }) {
		asMsg.Extra = asMsg.Extra[:len(asMsg.Extra)-1]
	}
	size := asMsg.Len()
	if mr.Rcode != m.Rcode || mr.Len != size || mr.Plugin != "errors" || lr.Rcode != m.Rcode || lr.Len != size {
		t.Fatalf("prometheus noted rcode %d size %d plugin %q, log rcode %d size %d; the reply has rcode %d, size %d as a dns.Msg; query:\n%v\nreply:\n%v",
			mr.Rcode, mr.Len, mr.Plugin, lr.Rcode, lr.Len, m.Rcode, size, r, m)
	}
	if !reflect.DeepEqual(lr.Msg, m) {
		t.Fatalf("log's message\n%v\nis not the reply\n%v", lr.Msg, m)
	}
	if mr.Msg == nil || mr.Msg.MsgHdr != m.MsgHdr {
		t.Fatalf("prometheus's message %v, want the reply's header %v", mr.Msg, m.MsgHdr)
	}
}

// fixtureAddrs returns every address the fixture's good records hold,
// decoded as the plugin decodes them.
func fixtureAddrs(tb testing.TB) map[string]bool {
	keys := registry.MustKeys(registry.DefaultPrefix)
	out := map[string]bool{}
	add := func(a registry.Addrs) {
		for _, ips := range a {
			for _, ip := range ips {
				out[ip.String()] = true
			}
		}
	}
	for _, kv := range rollcall.FixtureKVs() {
		k, err := keys.Parse(kv.Key)
		if err != nil {
			continue
		}
		switch k.Kind {
		case registry.KindHost:
			if h, err := registry.DecodeHost(k, []byte(kv.Value)); err == nil {
				add(h.Addrs)
			}
		case registry.KindInstance:
			if in, err := registry.DecodeInstance(k, []byte(kv.Value)); err == nil {
				add(in.Addrs)
			}
		}
	}
	if len(out) == 0 {
		tb.Fatal("no good address in the fixture")
	}
	return out
}

func inZones(name string, zones []string) bool {
	for _, z := range zones {
		if dns.IsSubDomain(z, strings.ToLower(name)) {
			return true
		}
	}
	return false
}
