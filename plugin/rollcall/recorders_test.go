package rollcall

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin"
	logplugin "github.com/coredns/coredns/plugin/log"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/pkg/replacer"
	"github.com/coredns/coredns/plugin/pkg/response"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

// namedHandler keeps the writer it is handed.
type namedHandler struct {
	name string
	got  *dns.ResponseWriter
}

func (h namedHandler) Name() string { return h.name }

func (h namedHandler) ServeDNS(_ context.Context, w dns.ResponseWriter, _ *dns.Msg) (int, error) {
	*h.got = w
	return dns.RcodeSuccess, nil
}

// passedTo is w as plugin.NextOrFailure hands it to the plugin named name:
// wrapped in CoreDNS's pluginWriter.
func passedTo(name string, w dns.ResponseWriter) dns.ResponseWriter {
	var got dns.ResponseWriter
	_, _ = plugin.NextOrFailure("", namedHandler{name: name, got: &got}, context.Background(), w, nil)
	return got
}

// otherWriter is a wrapping writer of a plugin the packed path does not
// know.
type otherWriter struct{ dns.ResponseWriter }

// DeployedWriters wraps w as CoreDNS does for a block with prometheus,
// errors and, with log, log before this plugin, and returns the writer this
// plugin gets and the recorders (the log's nil without log).
func DeployedWriters(w dns.ResponseWriter, withLog bool) (dns.ResponseWriter, *metrics.Recorder, *dnstest.Recorder) {
	mr := metrics.NewRecorder(w)
	out := passedTo("errors", mr)
	var lr *dnstest.Recorder
	if withLog {
		lr = dnstest.NewRecorder(passedTo("log", out))
		out = lr
	}
	return passedTo(pluginName, out), mr, lr
}

// SetMsgPathWhenWrapped hands every wrapped writer a dns.Msg (on) or lets
// the recorders of prometheus and log take the packed path (off), until the
// test ends.
func SetMsgPathWhenWrapped(t testing.TB, on bool) {
	old := msgPathWhenWrapped.Load()
	msgPathWhenWrapped.Store(on)
	t.Cleanup(func() { msgPathWhenWrapped.Store(old) })
}

func TestFindPluginWriter(t *testing.T) {
	if nextWriter.typ == nil {
		t.Fatal("plugin.NextOrFailure's writer not recognised: every block with a plugin before rollcall takes the dns.Msg path")
	}
	if kind, inner := unwrap(passedTo("x", otherWriter{})); kind != pluginLayer || inner != (otherWriter{}) {
		t.Errorf("unwrap(pluginWriter) = %v, %v", kind, inner)
	}
}

// queryVariants are the ways a case's query is sent: plain, with EDNS0
// (and DO, a small and a large buffer), over UDP and TCP.
var queryVariants = []struct {
	name string
	tcp  bool
	edns func(*dns.Msg)
}{
	{name: "udp", tcp: false},
	{name: "tcp", tcp: true},
	{name: "udp+edns1232+do", edns: func(m *dns.Msg) { setEdns(m, 1232, true) }},
	{name: "udp+edns4096", edns: func(m *dns.Msg) { setEdns(m, 4096, false) }},
	{name: "tcp+edns", tcp: true, edns: func(m *dns.Msg) { setEdns(m, 1232, true) }},
}

// setEdns sets EDNS0 on m, keeping an OPT record (and its ECS) it has.
func setEdns(m *dns.Msg, size uint16, do bool) {
	o := m.IsEdns0()
	if o == nil {
		m.SetEdns0(size, do)
		return
	}
	o.SetUDPSize(size)
	o.SetDo(do)
}

// TestMsgLen checks msgLen against miekg/dns's Msg.Len of the unpacked
// reply: every fixture answer as packed, and messages miekg/dns packs with
// compression, with TXT strings and names that unpack with escapes.
func TestMsgLen(t *testing.T) {
	hs, _ := fixtureHandlers(t)
	var packed [][]byte
	for _, c := range Cases {
		for _, v := range queryVariants {
			r := c.Msg()
			if v.edns != nil {
				v.edns(r)
			}
			cw := serveWrapped(t, hs[c.Zone], r, c.From, v.tcp)
			if cw.raw == nil {
				t.Fatalf("%s/%s: not packed", c.Name, v.name)
			}
			packed = append(packed, cw.raw)
		}
	}
	for _, m := range msgLenSamples(t) {
		m.Compress = true
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		packed = append(packed, b)
	}
	for _, b := range packed {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatal(err)
		}
		got, ok := msgLen(b)
		if !ok || got != m.Len() {
			t.Errorf("msgLen %d (ok %v), Msg.Len %d, of\n%v", got, ok, m.Len(), m)
		}
	}
	// A record type wire.go does not write: not measured, so not packed.
	m := new(dns.Msg)
	m.SetQuestion("x."+zInfra, dns.TypeMX)
	m.Answer = append(m.Answer, mustRR(t, "x."+zInfra+" 5 IN MX 10 mail."+zInfra))
	b, _ := m.Pack()
	if _, ok := msgLen(b); ok {
		t.Errorf("msgLen measured an MX record")
	}
}

// TestReplyMsg checks that the message a bare recorder gets is the one
// dns.Msg.Unpack makes of the packed reply, field for field: every fixture
// answer, the samples of TestMsgLen, and questions asked in odd case.
func TestReplyMsg(t *testing.T) {
	for _, s := range replySamples(t) {
		want := new(dns.Msg)
		if err := want.Unpack(s.b); err != nil {
			t.Fatal(err)
		}
		got, err := replyMsg(s.b, s.q)
		if err != nil {
			t.Fatalf("replyMsg: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("replyMsg\n%v\nUnpack\n%v", got, want)
		}
	}
}

// TestLogMsg checks that the message the log plugin's recorder gets reads,
// as log reads it, as the whole reply: for every sample of TestReplyMsg,
// and that every fixture answer gets it rather than the whole reply.
func TestLogMsg(t *testing.T) {
	now := time.Now()
	for _, s := range replySamples(t) {
		want := new(dns.Msg)
		if err := want.Unpack(s.b); err != nil {
			t.Fatal(err)
		}
		got := logMsg(s.b, s.q)
		if got == nil {
			if s.packed {
				t.Errorf("no log message for the packed answer\n%v", want)
			}
			continue
		}
		if g, w := logReads(got), logReads(want); g != w {
			t.Errorf("log reads\n %s\nwhole reply\n %s", g, w)
		}
		gt, _ := response.Typify(got, now)
		wt, _ := response.Typify(want, now)
		if gt != wt {
			t.Errorf("log's type %v, whole reply %v\n%v", gt, wt, want)
		}
	}
	// A record the packed path does not write, and an OPT record with an
	// extended rcode: no stand-in, the whole reply.
	m := new(dns.Msg)
	m.SetQuestion("x."+zInfra, dns.TypeMX)
	m.Answer = append(m.Answer, mustRR(t, "x."+zInfra+" 5 IN MX 10 mail."+zInfra))
	b, _ := m.Pack()
	if logMsg(b, m.Question[0]) != nil {
		t.Error("log message with a stand-in for MX")
	}
	m = new(dns.Msg)
	m.SetQuestion("x."+zInfra, dns.TypeA)
	m.SetEdns0(1232, true)
	m.Rcode = dns.RcodeBadVers
	b, _ = m.Pack()
	if logMsg(b, m.Question[0]) != nil {
		t.Error("log message with a stand-in for an OPT record with an extended rcode")
	}
}

// replySample is a packed reply and the question it answers; packed: the
// packed path wrote it.
type replySample struct {
	b      []byte
	q      dns.Question
	packed bool
}

// replySamples are every fixture answer as packed, questions asked in odd
// case, and the samples of TestMsgLen.
func replySamples(t *testing.T) []replySample {
	hs, _ := fixtureHandlers(t)
	var samples []replySample
	for _, c := range append(Cases,
		infra("WeB", dns.TypeSRV, fromPublic, ok, nil),
		infra("_HTTP._tcp.Web", dns.TypeSRV, fromPublic, ok, nil),
		infra("WEB-master", dns.TypeTXT, fromPublic, ok, nil),
		infra("nosuch.WEB", dns.TypeAAAA, fromPublic, ok, nil),
		Case{QName: "many", Zone: zInfra, QType: dns.TypeA, From: fromPublic}) {
		for _, v := range queryVariants {
			r := c.Msg()
			if v.edns != nil {
				v.edns(r)
			}
			cw := serveWrapped(t, hs[c.Zone], r, c.From, v.tcp)
			samples = append(samples, replySample{cw.raw, r.Question[0], true})
		}
	}
	for _, m := range msgLenSamples(t) {
		m.Compress = true
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, replySample{b, m.Question[0], false})
	}
	return samples
}

func msgLenSamples(t *testing.T) []*dns.Msg {
	q := func(name string, qtype uint16, rrs ...string) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.Response, m.Authoritative = true, true
		for _, s := range rrs {
			m.Answer = append(m.Answer, mustRR(t, s))
		}
		return m
	}
	withECS := q("web."+zInfra, dns.TypeA, "web."+zInfra+" 5 IN A 192.0.2.1")
	withECS.SetEdns0(1232, true)
	withECS.IsEdns0().Option = append(withECS.IsEdns0().Option,
		&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 20, SourceScope: 20, Address: net.IPv4(10, 1, 240, 0).To4()})
	return []*dns.Msg{
		q("a.b\\.c.example.", dns.TypeA, "a.b\\.c.example. 5 IN A 192.0.2.1", "a.b\\.c.example. 5 IN AAAA 2001:db8::1"),
		q("x\\032y.example.", dns.TypeTXT, `x\032y.example. 5 IN TXT "host=h2" "a\"quote" "back\\slash" "\001\255" ""`),
		q("example.", dns.TypeSOA, "example. 5 IN SOA ns.dns.example. hostmaster.example. 1 7200 1800 86400 5", "example. 5 IN NS ns.dns.example."),
		q("_http._tcp.web.example.", dns.TypeSRV, "_http._tcp.web.example. 5 IN SRV 10 10 8080 h1.web.example.", "h1.web.example. 5 IN A 192.0.2.1"),
		withECS,
	}
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return rr
}

// served is what the writers of a deployed block hold after one query.
type served struct {
	rcode   int
	err     error
	metrics *metrics.Recorder
	log     *dnstest.Recorder
	raw     bool // the answer went out packed
}

// serveDeployed answers r with h behind prometheus, errors and (withLog)
// log, through a ScrubWriter as CoreDNS's server would.
func serveDeployed(t *testing.T, h *Rollcall, r *dns.Msg, from string, tcp, withLog bool) served {
	t.Helper()
	cw := &captureWriter{ResponseWriter: test.ResponseWriter{RemoteIP: from, TCP: tcp}}
	w, mr, lr := DeployedWriters(request.NewScrubWriter(r, cw), withLog)
	rcode, err := h.ServeDNS(context.Background(), w, r)
	return served{rcode: rcode, err: err, metrics: mr, log: lr, raw: cw.raw != nil}
}

// logFormat is every field of a log line that depends on the reply or the
// query, without the client's port and the duration.
const logFormat = `{remote} {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} "{>opcode}"`

// TestRecordedLikeMsgPath answers every fixture case, over UDP and TCP,
// with and without EDNS0, behind the writers of prometheus, errors and log,
// once packed (the recorders filled by record) and once as a dns.Msg (the
// recorders filled by their WriteMsg), and compares what the recorders
// hold: what prometheus counts (rcode, size, plugin), the log line, and the
// class the log plugin gives the reply.
func TestRecordedLikeMsgPath(t *testing.T) {
	hs, _ := fixtureHandlers(t)
	repl := replacer.New()
	// The recorder under rollcall is the log plugin's (known), or a bare
	// recorder of a plugin the packed path does not know, which gets the
	// whole reply.
	for _, withLog := range []string{"", "log", "unknown"} {
		for _, c := range Cases {
			for _, v := range queryVariants {
				name := c.Name + "/" + v.name
				if withLog != "" {
					name += "/" + withLog
				}
				t.Run(name, func(t *testing.T) {
					r := c.Msg()
					if v.edns != nil {
						v.edns(r)
					}
					h := hs[c.Zone]
					if withLog == "log" {
						h = withLogPlugin(h, ".")
					}
					packed := serveDeployed(t, h, r.Copy(), c.From, v.tcp, withLog != "")
					if !packed.raw {
						t.Fatal("not packed behind prometheus, errors and log")
					}
					SetMsgPathWhenWrapped(t, true)
					want := serveDeployed(t, h, r.Copy(), c.From, v.tcp, withLog != "")
					if want.raw {
						t.Fatal("packed with the packed path off")
					}
					if packed.rcode != want.rcode || (packed.err == nil) != (want.err == nil) {
						t.Errorf("ServeDNS returned %d, %v; message path %d, %v", packed.rcode, packed.err, want.rcode, want.err)
					}
					g, w := packed.metrics, want.metrics
					if g.Rcode != w.Rcode || g.Len != w.Len || g.Plugin != w.Plugin {
						t.Errorf("prometheus records rcode %d size %d plugin %q; message path %d %d %q", g.Rcode, g.Len, g.Plugin, w.Rcode, w.Len, w.Plugin)
					}
					if g.Msg == nil || g.Msg.MsgHdr != w.Msg.MsgHdr {
						t.Errorf("prometheus's message header %v, message path %v", g.Msg, w.Msg.MsgHdr)
					}
					if withLog == "" {
						return
					}
					gl, wl := packed.log, want.log
					state := request.Request{W: &test.ResponseWriter{RemoteIP: c.From, TCP: v.tcp}, Req: r}
					gline := repl.Replace(context.Background(), state, gl, logFormat)
					wline := repl.Replace(context.Background(), state, wl, logFormat)
					if gline != wline {
						t.Errorf("log line\n %s\nmessage path\n %s", gline, wline)
					}
					now := time.Now()
					gt, _ := response.Typify(gl.Msg, now)
					wt, _ := response.Typify(wl.Msg, now)
					if gt != wt {
						t.Errorf("log's type %v, message path %v", gt, wt)
					}
					if withLog == "log" {
						if g, w := logReads(gl.Msg), logReads(wl.Msg); g != w {
							t.Errorf("log reads\n %s\nmessage path\n %s", g, w)
						}
						return
					}
					if gl.Msg.MsgHdr != wl.Msg.MsgHdr || !reflect.DeepEqual(gl.Msg.Question, wl.Msg.Question) ||
						!sameRRs(gl.Msg.Answer, wl.Msg.Answer) || !sameRRs(gl.Msg.Ns, wl.Msg.Ns) || !sameRRs(gl.Msg.Extra, wl.Msg.Extra) {
						t.Errorf("recorder's message\n%v\nmessage path\n%v", gl.Msg, wl.Msg)
					}
				})
			}
		}
	}
}

// withLogPlugin is a copy of h that knows a log plugin with a rule for
// scope in front of it, as OnStartup finds one in its server block:
// DeployedWriters's log recorder is then that plugin's.
func withLogPlugin(h *Rollcall, scope string) *Rollcall {
	return InBlock(h, logplugin.Logger{Next: h, Rules: []logplugin.Rule{{NameScope: scope}}})
}

// logReads is what the log plugin reads of a reply (log.Logger.ServeDNS,
// response.Typify, the replacer): the header, the question's type, the
// OPT record's DO bit, and the types of each section's records, in any
// order.
func logReads(m *dns.Msg) string {
	types := func(rrs []dns.RR) string {
		s := make([]string, len(rrs))
		for i, rr := range rrs {
			s[i] = dns.TypeToString[rr.Header().Rrtype]
		}
		sort.Strings(s)
		return strings.Join(s, ",")
	}
	do := "no OPT"
	if opt := m.IsEdns0(); opt != nil {
		do = fmt.Sprintf("DO %v", opt.Do())
	}
	qtype := "no question"
	if len(m.Question) > 0 {
		qtype = dns.TypeToString[m.Question[0].Qtype]
	}
	return fmt.Sprintf("%+v %s %s answer [%s] authority [%s] additional [%s]", m.MsgHdr, qtype, do, types(m.Answer), types(m.Ns), types(m.Extra))
}

// sameRRs compares records as text, in any order: answers are rotated per
// query.
func sameRRs(a, b []dns.RR) bool {
	text := func(xs []dns.RR) string {
		s := make([]string, len(xs))
		for i, x := range xs {
			s[i] = x.String()
		}
		sort.Strings(s)
		return strings.Join(s, "\n")
	}
	return text(a) == text(b)
}

// TestRecordedPathAllocs keeps the packed path behind prometheus and
// errors as cheap as without them but for one allocation, the message
// header the metrics recorder keeps; behind log too, the same one with the
// records' stand-ins; behind a bare recorder of a plugin not known, the
// reply unpacked for it: three for addresses (message, records, A
// records), seven for a negative answer (its SOA unpacked by miekg/dns).
func TestRecordedPathAllocs(t *testing.T) {
	hs, _ := fixtureHandlers(t)
	cw := &captureWriter{addr: &net.UDPAddr{IP: net.ParseIP(fromVPN0), Port: 53000}}
	logged := withLogPlugin(hs[zInfra], ".")
	for _, tt := range []struct {
		name    string
		withLog bool
		h       *Rollcall
		max     float64
	}{
		{"web." + zInfra, false, hs[zInfra], 1},
		{"h1.web." + zInfra, false, hs[zInfra], 1},
		{"nothing." + zInfra, false, hs[zInfra], 1},
		// The log plugin's recorder: the record types only.
		{"web." + zInfra, true, logged, 1},
		{"h1.web." + zInfra, true, logged, 1},
		{"nothing." + zInfra, true, logged, 1},
		// A recorder of a plugin not known: the whole reply.
		{"web." + zInfra, true, hs[zInfra], 3},
		{"h1.web." + zInfra, true, hs[zInfra], 3},
		{"nothing." + zInfra, true, hs[zInfra], 7},
	} {
		h := tt.h
		r := new(dns.Msg)
		r.SetQuestion(tt.name, dns.TypeA)
		w, mr, lr := DeployedWriters(request.NewScrubWriter(r, cw), tt.withLog)
		ctx := context.Background()
		allocs := testing.AllocsPerRun(200, func() {
			mr.Len = 0
			if lr != nil {
				lr.Len = 0
			}
			h.ServeDNS(ctx, w, r)
		})
		// captureWriter.Write copies the answer: one allocation.
		if allocs-1 > tt.max {
			t.Errorf("%s (log: %v, known: %v): %.0f allocations per query, want at most %.0f", tt.name, tt.withLog, tt.h.logs != nil, allocs-1, tt.max)
		}
	}
}

// TestLogsInto checks whose recorder rawWriter takes the one under rollcall
// for: the log plugin's when the block's log plugin calls rollcall next and
// has a rule for the query's name, else a plugin's it does not know.
func TestLogsInto(t *testing.T) {
	hs, _ := fixtureHandlers(t)
	h := hs[zInfra]
	logger := func(next plugin.Handler, scopes ...string) []logPlugin {
		l := logplugin.Logger{Next: next}
		for _, s := range scopes {
			l.Rules = append(l.Rules, logplugin.Rule{NameScope: s})
		}
		return logPluginsOf([]plugin.Handler{namedHandler{name: "errors"}, l})
	}
	other := namedHandler{name: "forward"}
	for _, tt := range []struct {
		name    string
		qname   string
		withLog bool
		logs    []logPlugin
		want    msgNeed
	}{
		{"prometheus only", "web." + zInfra, false, logger(h, "."), needHeader},
		{"log, every name", "web." + zInfra, true, logger(h, "."), needTypes},
		{"log, the zone", "web." + zInfra, true, logger(h, zInfra), needTypes},
		{"log, the zone, name in upper case", "WEB.INFRA.EXAMPLE.COM.", true, logger(h, zInfra), needTypes},
		{"log, a second rule for the zone", "web." + zInfra, true, logger(h, "other.example.", zInfra), needTypes},
		{"log, another zone", "web." + zInfra, true, logger(h, "other.example."), needWhole},
		{"log before another plugin", "web." + zInfra, true, logger(other, "."), needWhole},
		{"no log plugin known", "web." + zInfra, true, nil, needWhole},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := new(dns.Msg)
			r.SetQuestion(tt.qname, dns.TypeA)
			w, _, _ := DeployedWriters(request.NewScrubWriter(r, &captureWriter{}), tt.withLog)
			p := rawWriter(w, r, nil, tt.logs)
			if p.out == nil || !p.recorded || p.need != tt.want {
				t.Errorf("rawWriter: packed %v, recorded %v, need %d; want packed, recorded, need %d", p.out != nil, p.recorded, p.need, tt.want)
			}
		})
	}
}
