package rollcall

// Packed answers through the plugins a production server block carries.
//
// CoreDNS hands a plugin its ScrubWriter wrapped once for every plugin in
// front of it: plugin.NextOrFailure wraps the writer in its pluginWriter
// (which tells a metrics recorder under it which plugin wrote), prometheus
// in a metrics.Recorder and log in a dnstest.Recorder, both of which note
// the rcode, length and message of the reply as it passes through WriteMsg.
// None of them changes the reply. So when every writer between this plugin
// and the ScrubWriter is one of these, the packed bytes still go to the
// connection as they are, and each writer's bookkeeping is done here as its
// WriteMsg would have done it: the metrics and the log line come out the
// same as through a dns.Msg (TestRecordedLikeMsgPath compares the
// recorders for every fixture case, TestDeployedMetricsAndLog prometheus's
// series and the log lines of a real CoreDNS). Any other writer (rewrite,
// cache, dnstap, a plugin this does not know) gets the dns.Msg.
//
// What a recorder keeps depends on who reads it. prometheus reads a
// metrics.Recorder's rcode and length: it gets the reply's header. A bare
// dnstest.Recorder may belong to any plugin (log, trace, one this does not
// know), which may read the whole reply: it gets the reply unpacked
// (replyMsg), unless it is known to be the log plugin's own. log reads no
// record, only their types (response.Typify) besides the header: its
// recorder gets logMsg, the header with a shared stand-in record of each
// record's type, which costs one allocation where unpacking an answer of
// ten addresses cost a kilobyte of records for the collector.

import (
	"context"
	"encoding/binary"
	"net"
	"reflect"
	"strings"
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	logplugin "github.com/coredns/coredns/plugin/log"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/pkg/edns"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

// rawPath says whether the packed bytes may go out as they are, and what
// must be recorded on the way.
type rawPath struct {
	out dns.ResponseWriter // the connection's writer, under the ScrubWriter; nil: hand on a dns.Msg
	// recorded: recorders or plugin writers stand between the handler's
	// writer and the ScrubWriter, to be filled by record.
	recorded bool
	// need is how much of the reply the recorders' owners read.
	need msgNeed
}

// msgNeed is how much of the reply a recorder's owner reads, in the order
// of what a message must hold: the message given to every recorder on the
// way is the one the most demanding needs.
type msgNeed uint8

const (
	needHeader msgNeed = iota // prometheus: rcode and length (headerMsg)
	needTypes                 // log: the header and the records' types (logMsg)
	needWhole                 // a bare recorder of another plugin: the whole reply (replyMsg)
)

// rawWriter returns how to write the reply to r: packed, to the
// connection's writer, when every writer from w down to CoreDNS's
// ScrubWriter only records what passes (see above), the query has no TSIG,
// and CoreDNS would copy no EDNS0 option of the request (opt, or nil) into
// the reply. logs is the block's log plugins (logPluginsOf).
func rawWriter(w dns.ResponseWriter, r *dns.Msg, opt *dns.OPT, logs []logPlugin) rawPath {
	if r.IsTsig() != nil {
		return rawPath{}
	}
	if opt != nil {
		for _, o := range opt.Option {
			if edns.SupportedOption(o.Option()) {
				return rawPath{}
			}
		}
	}
	var p rawPath
	var above dns.ResponseWriter // the pluginWriter just walked through, or nil
	for depth := 0; depth < maxLayers; depth++ {
		kind, inner := unwrap(w)
		switch kind {
		case scrubLayer:
			p.out = inner
			return p
		case unknownLayer:
			return rawPath{}
		case recorderLayer:
			need := needWhole
			if above != nil && logsInto(above, r, logs) {
				need = needTypes
			}
			p.need = max(p.need, need)
		}
		if msgPathWhenWrapped.Load() {
			return rawPath{}
		}
		p.recorded = true
		above = nil
		if kind == pluginLayer {
			above = w
		}
		w = inner
	}
	return rawPath{}
}

// logPlugin is one log plugin of a server block, as much as it takes to
// know its recorder: the plugin it calls next and its rules' name scopes.
type logPlugin struct {
	next   string
	all    bool     // a rule's scope is the root: it records every query
	scopes []string // else the rules' scopes
}

// logPluginsOf finds the log plugins among a server block's handlers.
func logPluginsOf(handlers []plugin.Handler) []logPlugin {
	var logs []logPlugin
	for _, h := range handlers {
		l, ok := h.(logplugin.Logger)
		if !ok || l.Next == nil {
			continue
		}
		lp := logPlugin{next: l.Next.Name()}
		for _, rule := range l.Rules {
			lp.all = lp.all || rule.NameScope == "."
			lp.scopes = append(lp.scopes, rule.NameScope)
		}
		logs = append(logs, lp)
	}
	return logs
}

// logsInto reports whether the bare recorder that the pluginWriter pw wraps
// is a log plugin's own. log.Logger.ServeDNS hands its Next either its own
// recorder, when one of its rules covers the query's name, or the writer it
// was handed, through plugin.NextOrFailure, which wraps either in a
// pluginWriter named after that Next: so a recorder under a pluginWriter
// named after a log plugin's Next, for a name one of its rules covers, is
// that plugin's.
func logsInto(pw dns.ResponseWriter, r *dns.Msg, logs []logPlugin) bool {
	if len(logs) == 0 {
		return false
	}
	next := reflect.ValueOf(pw).Elem().Field(nextWriter.name).String()
	for i := range logs {
		l := &logs[i]
		if l.next != next {
			continue
		}
		if l.all {
			return true
		}
		// The name as log matches it (request.Request.Name).
		name := (&request.Request{Req: r}).Name()
		for _, scope := range l.scopes {
			if plugin.Name(scope).Matches(name) {
				return true
			}
		}
		return false
	}
	return false
}

// msgPathWhenWrapped hands every wrapped writer a dns.Msg, as before this
// file: tests set it to compare both ways through the same server.
var msgPathWhenWrapped atomic.Bool

// maxLayers bounds the walk down the writers; a longer chain (never seen)
// gets the dns.Msg.
const maxLayers = 32

type layerKind uint8

const (
	unknownLayer  layerKind = iota
	scrubLayer              // request.ScrubWriter: the end of the walk
	pluginLayer             // plugin.NextOrFailure's pluginWriter
	recorderLayer           // a bare dnstest.Recorder (log, trace)
	metricsLayer            // prometheus's metrics.Recorder
)

// unwrap names the kind of writer w is and returns the writer it wraps.
func unwrap(w dns.ResponseWriter) (layerKind, dns.ResponseWriter) {
	switch x := w.(type) {
	case *request.ScrubWriter:
		if x != nil && x.ResponseWriter != nil {
			return scrubLayer, x.ResponseWriter
		}
	case *dnstest.Recorder:
		if x != nil && x.ResponseWriter != nil {
			return recorderLayer, x.ResponseWriter
		}
	case *metrics.Recorder:
		if x != nil && x.Recorder != nil && x.Recorder.ResponseWriter != nil {
			return metricsLayer, x.Recorder.ResponseWriter
		}
	default:
		if nextWriter.typ != nil && reflect.TypeOf(w) == nextWriter.typ {
			v := reflect.ValueOf(w).Elem()
			if inner, _ := v.Field(nextWriter.inner).Interface().(dns.ResponseWriter); inner != nil {
				return pluginLayer, inner
			}
		}
	}
	return unknownLayer, nil
}

// nextWriter describes plugin.NextOrFailure's writer, an unexported type: its
// WriteMsg and Write tell the writer it wraps, when that is a
// plugin.PluginTracker (a metrics.Recorder), the name of the plugin it was
// made for, and pass the reply on. typ is nil when the CoreDNS this is
// built with wraps differently: then no chain with one takes the packed
// path.
var nextWriter = findPluginWriter()

type pluginWriterType struct {
	typ         reflect.Type
	inner, name int // field indexes: the wrapped writer, the plugin's name
}

func findPluginWriter() pluginWriterType {
	var t reflect.Type
	probe := plugin.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, _ *dns.Msg) (int, error) {
		t = reflect.TypeOf(w)
		return 0, nil
	})
	// Nothing is written: the probe only looks at what it is handed.
	_, _ = plugin.NextOrFailure(pluginName, probe, context.Background(), nil, nil)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return pluginWriterType{}
	}
	s := t.Elem()
	// Only the layout this was written against: a wrapped writer and a
	// name, nothing more that could change what its WriteMsg does.
	if s.PkgPath() != "github.com/coredns/coredns/plugin" || s.NumField() != 2 {
		return pluginWriterType{}
	}
	p := pluginWriterType{typ: t, inner: -1, name: -1}
	for i := 0; i < s.NumField(); i++ {
		f := s.Field(i)
		switch {
		case f.Name == "ResponseWriter" && f.Type == reflect.TypeFor[dns.ResponseWriter]():
			p.inner = i
		case f.Name == "plugin" && f.Type.Kind() == reflect.String:
			p.name = i
		}
	}
	if p.inner < 0 || p.name < 0 {
		return pluginWriterType{}
	}
	return p
}

// record does, from w down to the ScrubWriter, what each writer's WriteMsg
// does with the reply packed in b (to question q), of which the recorders
// count size bytes (msgLen): a pluginWriter names its plugin to the tracker
// it wraps, a recorder notes the rcode, adds size and keeps the message,
// as much of it as need says its owner reads. rawWriter has checked that
// every writer on the way is one of these.
func record(w dns.ResponseWriter, need msgNeed, b []byte, q dns.Question, size int) error {
	var m *dns.Msg
	switch need {
	case needHeader:
		m = headerMsg(b, q)
	case needTypes:
		m = logMsg(b, q)
	}
	if m == nil {
		var err error
		if m, err = replyMsg(b, q); err != nil {
			return err
		}
	}
	for depth := 0; depth < maxLayers; depth++ {
		kind, inner := unwrap(w)
		switch kind {
		case scrubLayer, unknownLayer:
			return nil
		case pluginLayer:
			if t, ok := inner.(plugin.PluginTracker); ok {
				t.SetPlugin(reflect.ValueOf(w).Elem().Field(nextWriter.name).String())
			}
		case recorderLayer:
			noteReply(w.(*dnstest.Recorder), size, m)
		case metricsLayer:
			noteReply(w.(*metrics.Recorder).Recorder, size, m)
		}
		w = inner
	}
	return nil
}

// noteReply is dnstest.Recorder.WriteMsg's bookkeeping.
func noteReply(rec *dnstest.Recorder, size int, m *dns.Msg) {
	rec.Rcode = m.Rcode
	rec.Len += size
	rec.Msg = m
}

// headerMsg is the reply packed in b as far as the metrics recorder's owner
// reads it: the header and the question, no records. It is what a
// metrics.Recorder keeps when no bare recorder (whose owner may read the
// records) wants the whole reply.
func headerMsg(b []byte, q dns.Question) *dns.Msg {
	hm := new(struct {
		m dns.Msg
		q [1]dns.Question
	})
	hm.m.MsgHdr = headerOf(b)
	hm.q[0] = q
	hm.m.Question = hm.q[:]
	return &hm.m
}

// headerOf is the header of the message packed in b, as Unpack reads it
// (the rcode without an OPT record's extended bits).
func headerOf(b []byte) dns.MsgHdr {
	bits := binary.BigEndian.Uint16(b[2:])
	return dns.MsgHdr{
		Id:                 binary.BigEndian.Uint16(b),
		Response:           bits&(1<<15) != 0,
		Opcode:             int(bits>>11) & 0xf,
		Authoritative:      bits&(1<<10) != 0,
		Truncated:          bits&(1<<9) != 0,
		RecursionDesired:   bits&(1<<8) != 0,
		RecursionAvailable: bits&(1<<7) != 0,
		Zero:               bits&(1<<6) != 0,
		AuthenticatedData:  bits&(1<<5) != 0,
		CheckingDisabled:   bits&(1<<4) != 0,
		Rcode:              int(bits & 0xf),
	}
}

// logMsg is the reply packed in b (to a question q) as far as the log
// plugin reads it: response.Typify reads the header, the question's type,
// whether the reply has an OPT record with the DO bit, how many answers it
// has and the types of its records (SOA and NS in the authority section,
// expired RRSIGs); the line reads the rcode, the flags and the length the
// recorder counts. So each record is a stand-in of its type shared by
// every reply (standIn), and the message is one allocation. It is nil for a
// reply with a record it has no stand-in for, or that replyMsg would not
// read itself: that goes to replyMsg.
func logMsg(b []byte, q dns.Question) *dns.Msg {
	qlen, ok := plainQuestion(b, q.Name)
	if !ok || binary.BigEndian.Uint16(b[4:]) != 1 {
		return nil
	}
	an := int(binary.BigEndian.Uint16(b[6:]))
	ns := int(binary.BigEndian.Uint16(b[8:]))
	ar := int(binary.BigEndian.Uint16(b[10:]))
	m, q0, rrs := newLogMsg(an + ns + ar)
	for off := headerLen + qlen + 4; off < len(b); {
		_, rrtype, rdata, end, ok := rrAt(b, off, q.Name, qlen)
		if !ok {
			return nil
		}
		rr := standIn(rrtype, binary.BigEndian.Uint32(b[rdata-6:]))
		if rr == nil {
			return nil
		}
		rrs = append(rrs, rr)
		off = end
	}
	if len(rrs) != an+ns+ar {
		return nil
	}
	m.MsgHdr = headerOf(b)
	q0[0] = q
	m.Question = q0[:]
	if an > 0 {
		m.Answer = rrs[:an:an]
	}
	if ns > 0 {
		m.Ns = rrs[an : an+ns : an+ns]
	}
	if ar > 0 {
		m.Extra = rrs[an+ns:]
	}
	return m
}

// newLogMsg allocates logMsg's message, its question and room for n
// records, in one allocation sized for an answer of one address (and an
// OPT record) or of ten; a larger reply takes one more.
func newLogMsg(n int) (*dns.Msg, *[1]dns.Question, []dns.RR) {
	if n <= 2 {
		lm := new(struct {
			m   dns.Msg
			q   [1]dns.Question
			rrs [2]dns.RR
		})
		return &lm.m, &lm.q, lm.rrs[:0]
	}
	lm := new(struct {
		m   dns.Msg
		q   [1]dns.Question
		rrs [12]dns.RR
	})
	rrs := lm.rrs[:0]
	if n > len(lm.rrs) {
		rrs = make([]dns.RR, 0, n)
	}
	return &lm.m, &lm.q, rrs
}

// standIns are logMsg's records: a record of each type the packed path
// writes, with only the type set, the class an OPT record's UDP size
// and its TTL its extended rcode, version and DO bit. They are shared by
// every reply and never changed.
var standIns = struct {
	a, aaaa, srv, txt, soa, ns dns.RR
	opt, optDO                 dns.RR
}{
	a:     &dns.A{Hdr: dns.RR_Header{Rrtype: dns.TypeA, Class: dns.ClassINET}},
	aaaa:  &dns.AAAA{Hdr: dns.RR_Header{Rrtype: dns.TypeAAAA, Class: dns.ClassINET}},
	srv:   &dns.SRV{Hdr: dns.RR_Header{Rrtype: dns.TypeSRV, Class: dns.ClassINET}},
	txt:   &dns.TXT{Hdr: dns.RR_Header{Rrtype: dns.TypeTXT, Class: dns.ClassINET}},
	soa:   &dns.SOA{Hdr: dns.RR_Header{Rrtype: dns.TypeSOA, Class: dns.ClassINET}},
	ns:    &dns.NS{Hdr: dns.RR_Header{Rrtype: dns.TypeNS, Class: dns.ClassINET}},
	opt:   &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}},
	optDO: &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Ttl: optDO}},
}

// optDO is the DO bit in an OPT record's TTL.
const optDO = 1 << 15

// standIn is the stand-in of a record of type rrtype with TTL ttl, or nil
// when there is none: an OPT record with an extended rcode or a version
// (which the packed path does not write) has none, as its TTL says more
// than the DO bit.
func standIn(rrtype uint16, ttl uint32) dns.RR {
	switch rrtype {
	case dns.TypeA:
		return standIns.a
	case dns.TypeAAAA:
		return standIns.aaaa
	case dns.TypeSRV:
		return standIns.srv
	case dns.TypeTXT:
		return standIns.txt
	case dns.TypeSOA:
		return standIns.soa
	case dns.TypeNS:
		return standIns.ns
	case dns.TypeOPT:
		switch ttl {
		case 0:
			return standIns.opt
		case optDO:
			return standIns.optDO
		}
	}
	return nil
}

// replyMsg is the reply packed in b (to a question q) as dns.Msg.Unpack
// makes it, for a recorder whose owner may read it all, in far fewer
// allocations: the owner names the question's, A and AAAA records with
// their addresses in one array each. Records that name more than the
// question (SRV, SOA, TXT, OPT, addresses of SRV targets) are unpacked by
// miekg/dns one by one. A reply it cannot read so goes to dns.Msg.Unpack
// whole.
func replyMsg(b []byte, q dns.Question) (*dns.Msg, error) {
	qlen, ok := plainQuestion(b, q.Name)
	if !ok {
		return unpackMsg(b)
	}
	c, ok := countRecords(b, q.Name, qlen)
	if !ok {
		return unpackMsg(b)
	}
	an := int(binary.BigEndian.Uint16(b[6:]))
	ns := int(binary.BigEndian.Uint16(b[8:]))
	ar := int(binary.BigEndian.Uint16(b[10:]))
	if binary.BigEndian.Uint16(b[4:]) != 1 || an+ns+ar != c.all {
		return unpackMsg(b)
	}
	m := headerMsg(b, q)
	rrs, err := unpackRecords(b, q.Name, qlen, c)
	if err != nil {
		return nil, err
	}
	if an > 0 {
		m.Answer = rrs[:an:an]
	}
	if ns > 0 {
		m.Ns = rrs[an : an+ns : an+ns]
	}
	if ar > 0 {
		m.Extra = rrs[an+ns:]
	}
	if opt := m.IsEdns0(); opt != nil {
		m.Rcode |= opt.ExtendedRcode()
	}
	return m, nil
}

// plainQuestion is the packed length of the question's name qname in b,
// with ok true when replyMsg may read the reply itself: qname fully
// qualified and without escapes (a name that unpacks with escapes would not
// read back as qname), packed whole, its type and class in b.
func plainQuestion(b []byte, qname string) (qlen int, ok bool) {
	qlen = len(qname) + 1
	if qname == "." {
		qlen = 1
	}
	if !strings.HasSuffix(qname, ".") || strings.IndexByte(qname, '\\') >= 0 ||
		len(b) < headerLen+qlen+4 || b[headerLen+qlen-1] != 0 {
		return 0, false
	}
	return qlen, true
}

// recordCounts is what countRecords finds in a packed reply: how many
// records follow the question, and how many of them are A and AAAA records
// owned by the question's name or a suffix of it (which unpackRecords makes
// itself).
type recordCounts struct {
	all, a, aaaa int
}

// countRecords walks the records of the reply packed in b, after the
// question's name qname (qlen bytes packed) and its type and class. ok is
// false when a record runs past b.
func countRecords(b []byte, qname string, qlen int) (c recordCounts, ok bool) {
	for off := headerLen + qlen + 4; off < len(b); c.all++ {
		owner, rrtype, rdata, end, ok := rrAt(b, off, qname, qlen)
		if !ok {
			return recordCounts{}, false
		}
		if owner >= 0 {
			switch {
			case rrtype == dns.TypeA && end-rdata == 4:
				c.a++
			case rrtype == dns.TypeAAAA && end-rdata == 16:
				c.aaaa++
			}
		}
		off = end
	}
	return c, true
}

// unpackRecords reads the records countRecords counted (c) in the reply
// packed in b, in order: the addresses owned by the question's name (qname,
// qlen bytes packed) or a suffix of it into one array per type, the others
// through miekg/dns.
func unpackRecords(b []byte, qname string, qlen int, c recordCounts) ([]dns.RR, error) {
	rrs := make([]dns.RR, c.all)
	as := make([]aRR, c.a)
	aaaas := make([]aaaaRR, c.aaaa)
	off := headerLen + qlen + 4
	for i := range rrs {
		owner, rrtype, rdata, end, _ := rrAt(b, off, qname, qlen)
		hdr := dns.RR_Header{Rrtype: rrtype, Class: binary.BigEndian.Uint16(b[rdata-8:]),
			Ttl: binary.BigEndian.Uint32(b[rdata-6:]), Rdlength: uint16(end - rdata)}
		if owner >= 0 {
			hdr.Name = qname[owner:]
		}
		switch {
		case owner >= 0 && rrtype == dns.TypeA && end-rdata == 4:
			a := &as[0]
			as = as[1:]
			copy(a.ip[:], b[rdata:end])
			a.rr.Hdr, a.rr.A = hdr, a.ip[:]
			rrs[i] = &a.rr
		case owner >= 0 && rrtype == dns.TypeAAAA && end-rdata == 16:
			a := &aaaas[0]
			aaaas = aaaas[1:]
			copy(a.ip[:], b[rdata:end])
			a.rr.Hdr, a.rr.AAAA = hdr, a.ip[:]
			rrs[i] = &a.rr
		default:
			rr, _, err := dns.UnpackRR(b, off)
			if err != nil {
				return nil, err
			}
			rrs[i] = rr
		}
		off = end
	}
	return rrs, nil
}

// aRR and aaaaRR are an address record and the bytes of its address, in
// one allocation with their neighbours.
type (
	aRR struct {
		rr dns.A
		ip [net.IPv4len]byte
	}
	aaaaRR struct {
		rr dns.AAAA
		ip [net.IPv6len]byte
	}
)

func unpackMsg(b []byte) (*dns.Msg, error) {
	m := new(dns.Msg)
	return m, m.Unpack(b)
}

// rrAt reads the record at off in b: where its RDATA starts and ends, and,
// when its owner is a pointer to the question's name qname (qlen bytes
// packed) or to a suffix of it, that suffix's index in qname, else -1.
func rrAt(b []byte, off int, qname string, qlen int) (owner int, rrtype uint16, rdata, end int, ok bool) {
	owner = -1
	if off+1 < len(b) && b[off]&0xc0 == 0xc0 {
		k := (int(b[off])&0x3f)<<8 | int(b[off+1]) - headerLen
		// A label of the question's starts at the same index in its
		// string as in its packed form: at 0 or after a dot.
		if k >= 0 && k < len(qname) && (k == 0 || qname[k-1] == '.') {
			owner = k
		}
	}
	_, next, ok := nameLen(b, off)
	if !ok || next+10 > len(b) {
		return 0, 0, 0, 0, false
	}
	rdata = next + 10
	end = rdata + int(binary.BigEndian.Uint16(b[next+8:]))
	return owner, binary.BigEndian.Uint16(b[next:]), rdata, end, end <= len(b)
}

// msgLen is what miekg/dns's Msg.Len says of the reply packed in b (a
// header, one question and records, as wire.go writes them) once
// unpacked: a dns.Msg that is not compressed counts every name at its full
// length, and TXT strings as unpacked, with escapes. It is the size a
// recorder counts when the reply passes as a dns.Msg, which is longer than
// the packed bytes. ok is false for a record type wire.go does not write.
func msgLen(b []byte) (size int, ok bool) {
	n, off, ok := nameLen(b, headerLen)
	if !ok || off+4 > len(b) {
		return 0, false
	}
	size = headerLen + n + 4
	off += 4
	for off < len(b) {
		if n, off, ok = nameLen(b, off); !ok || off+10 > len(b) {
			return 0, false
		}
		rrtype := binary.BigEndian.Uint16(b[off:])
		rdata := off + 10
		end := rdata + int(binary.BigEndian.Uint16(b[off+8:]))
		if end > len(b) {
			return 0, false
		}
		size += n + 10
		var rd int
		switch rrtype {
		case dns.TypeA, dns.TypeAAAA, dns.TypeOPT:
			// Addresses as they are; the only OPT written here is
			// CoreDNS's own, whose options pack back to these bytes.
			rd, off = end-rdata, end
		case dns.TypeNS:
			rd, off, ok = nameLen(b, rdata)
		case dns.TypeSOA:
			var n2 int
			if rd, off, ok = nameLen(b, rdata); ok {
				n2, off, ok = nameLen(b, off)
				rd += n2 + 20
				off += 20
			}
		case dns.TypeSRV:
			rd, off, ok = nameLen(b, rdata+6)
			rd += 6
		case dns.TypeTXT:
			rd, ok = txtLen(b[rdata:end])
			off = end
		default:
			return 0, false
		}
		if !ok || off != end {
			return 0, false
		}
		size += rd
	}
	return size, true
}

// nameLen is the uncompressed length of the name at off in b and the
// offset just past it there. Pointers must point backwards, as wire.go's
// do, which also ends any loop.
func nameLen(b []byte, off int) (n, next int, ok bool) {
	next = -1
	for at := off; ; {
		if at >= len(b) {
			return 0, 0, false
		}
		c := int(b[at])
		switch {
		case c == 0:
			if next < 0 {
				next = at + 1
			}
			n++
			return n, next, n <= 255
		case c&0xc0 == 0xc0:
			if at+1 >= len(b) {
				return 0, 0, false
			}
			ptr := (c&0x3f)<<8 | int(b[at+1])
			if ptr >= at {
				return 0, 0, false
			}
			if next < 0 {
				next = at + 2
			}
			at = ptr
		case c&0xc0 != 0:
			return 0, 0, false
		default:
			n += 1 + c
			at += 1 + c
		}
	}
}

// txtLen is the length miekg/dns counts for TXT RDATA once unpacked: each
// string with its length byte, a quote or backslash escaped with a
// backslash, other bytes outside printable ASCII as \DDD.
func txtLen(rd []byte) (int, bool) {
	n := 0
	for i := 0; i < len(rd); {
		l := int(rd[i])
		if i+1+l > len(rd) {
			return 0, false
		}
		n++
		for _, c := range rd[i+1 : i+1+l] {
			switch {
			case c == '"' || c == '\\':
				n += 2
			case c < ' ' || c > '~':
				n += 4
			default:
				n++
			}
		}
		i += 1 + l
	}
	return n, true
}
