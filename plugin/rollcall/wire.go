package rollcall

// Packed responses. The plugin writes its answers as DNS wire format
// directly: the records an answer needs are few and fixed in shape, and
// every owner name is the query name or a suffix of it, so it is a two-byte
// compression pointer into the question. This avoids what dominated the
// cost of an answer built as a dns.Msg: allocating the message and its
// records, and miekg/dns measuring and packing every owner name again.
//
// The same bytes serve both ways out (see respond in rollcall.go): written
// as they are when the writers between CoreDNS and the plugin only record
// what passes (recorders.go: prometheus, log), else unpacked into a dns.Msg
// for the wrapping plugins.

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

const (
	headerLen = 12
	// maxPointer is the largest offset a compression pointer can hold.
	maxPointer = 0x3fff
	// optLen is an OPT record without options: root owner, type, class
	// (UDP size), TTL (flags), RDLENGTH.
	optLen = 11
)

// packer is a response being packed into DNS wire format, in b. Records
// are appended section by section; one that would make the message longer
// than limit is taken back and marks the message full.
type packer struct {
	b     []byte
	limit int
	full  bool      // an answer record did not fit: the reply is truncated
	count [3]uint16 // answer, authority, additional
	qlen  int       // length of the packed question name
	// SRV targets written to the answer, whose addresses go in the
	// additional section once the answer is complete
	targets []target
	// sample is reused by answers that pick a random subset (walk).
	sample []int32
}

// target is an SRV target written at off, and its addresses.
type target struct {
	off  int
	host string
	ips  []netip.Addr
}

const (
	secAnswer = iota
	secAuthority
	secAdditional
)

var packerPool = sync.Pool{New: func() any { return &packer{b: make([]byte, 0, 1024)} }}

// maxPooled keeps the odd huge TCP answer's buffer out of the pool.
const maxPooled = 16 << 10

// getPacker takes an empty packer from the pool, for a reply of at most
// limit bytes.
func getPacker(limit int) *packer {
	pk := packerPool.Get().(*packer)
	pk.b, pk.limit, pk.full, pk.count, pk.qlen = pk.b[:0], limit, false, [3]uint16{}, 0
	pk.targets = pk.targets[:0]
	return pk
}

// putPacker gives pk back to the pool once its bytes are written.
func putPacker(pk *packer) {
	clear(pk.targets) // drop references into the index
	if cap(pk.sample) > maxPooled {
		pk.sample = nil
	}
	if cap(pk.b) <= maxPooled {
		packerPool.Put(pk)
	}
}

// header starts a reply to r as dns.Msg.SetReply would, authoritative,
// with the question and rcode; counts and TC are set by finish.
func (pk *packer) header(r *dns.Msg, q dns.Question, rcode int) bool {
	var flags uint16 = 1<<15 | uint16(r.Opcode&0xf)<<11 | 1<<10 // QR, opcode, AA
	if r.Opcode == dns.OpcodeQuery {
		if r.RecursionDesired {
			flags |= 1 << 8
		}
		if r.CheckingDisabled {
			flags |= 1 << 4
		}
	}
	flags |= uint16(rcode & 0xf)
	pk.b = binary.BigEndian.AppendUint16(pk.b, r.Id)
	pk.b = binary.BigEndian.AppendUint16(pk.b, flags)
	pk.b = append(pk.b, 0, 1, 0, 0, 0, 0, 0, 0) // QDCOUNT 1, the rest in finish
	start := len(pk.b)
	var ok bool
	if pk.b, ok = appendName(pk.b, q.Name); !ok {
		return false
	}
	pk.qlen = len(pk.b) - start
	pk.b = binary.BigEndian.AppendUint16(pk.b, q.Qtype)
	pk.b = binary.BigEndian.AppendUint16(pk.b, q.Qclass)
	return true
}

// setRcode replaces the rcode written by header.
func (pk *packer) setRcode(rcode int) {
	pk.b[3] = pk.b[3]&0xf0 | byte(rcode&0xf)
}

// finish writes the section counts and TC when an answer record did not
// fit.
func (pk *packer) finish() {
	if pk.full {
		pk.b[2] |= 1 << 1
	}
	binary.BigEndian.PutUint16(pk.b[6:], pk.count[secAnswer])
	binary.BigEndian.PutUint16(pk.b[8:], pk.count[secAuthority])
	binary.BigEndian.PutUint16(pk.b[10:], pk.count[secAdditional])
}

// suffix is the offset of the question name's last n packed bytes: the
// zone, or a service name and zone, as a compression pointer target.
func (pk *packer) suffix(n int) int { return headerLen + pk.qlen - n }

// appendName packs a presentation-format name without compression. Names
// with escapes are left to miekg/dns (they never name anything here, but
// the question must still be echoed as asked).
func appendName(b []byte, name string) ([]byte, bool) {
	if strings.IndexByte(name, '\\') >= 0 {
		start := len(b)
		b = append(b, make([]byte, maxName+1)...)
		off, err := dns.PackDomainName(name, b, start, nil, false)
		if err != nil {
			return b[:start], false
		}
		return b[:off], true
	}
	if name == "." || name == "" {
		return append(b, 0), true
	}
	start := 0
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		n := i - start
		if n == 0 || n > 63 {
			return b, false
		}
		b = append(b, byte(n))
		b = append(b, name[start:i]...)
		start = i + 1
	}
	if start < len(name) { // not fully qualified
		n := len(name) - start
		if n > 63 {
			return b, false
		}
		b = append(b, byte(n))
		b = append(b, name[start:]...)
	}
	return append(b, 0), true
}

// packZone is a lower-case zone name in wire format, made at setup.
func packZone(zone string) []byte {
	b, _ := appendName(nil, zone)
	return b
}

func appendPointer(b []byte, off int) []byte {
	return append(b, 0xc0|byte(off>>8), byte(off))
}

func appendLabel[T string | []byte](b []byte, label T) []byte {
	b = append(b, byte(len(label)))
	return append(b, label...)
}

// owner is a record's owner name: [label.]<the name at offset at>, where
// at is always in the question (or a target written before, when it can be
// pointed at).
type owner struct {
	label string
	at    int
}

// at is the owner name at offset off, or [label.]<the name at base> when
// off is past what a compression pointer can reach.
func ownerAt(off int, label string, base int) owner {
	if off <= maxPointer {
		return owner{at: off}
	}
	return owner{label: label, at: base}
}

// rr starts a record: it writes the owner, type, class and TTL and returns
// where the record and its RDLENGTH start.
func (pk *packer) rr(o owner, rrtype uint16, ttl uint32) (start, rdlen int) {
	start = len(pk.b)
	if o.label != "" {
		pk.b = appendLabel(pk.b, o.label)
	}
	pk.b = appendPointer(pk.b, o.at)
	pk.b = binary.BigEndian.AppendUint16(pk.b, rrtype)
	pk.b = binary.BigEndian.AppendUint16(pk.b, dns.ClassINET)
	pk.b = binary.BigEndian.AppendUint32(pk.b, ttl)
	rdlen = len(pk.b)
	pk.b = append(pk.b, 0, 0)
	return start, rdlen
}

// end closes a record begun by rr in section sec, or takes it back when it
// does not fit (which truncates the reply if it was an answer).
func (pk *packer) end(sec, start, rdlen int) bool {
	if len(pk.b) > pk.limit {
		pk.b = pk.b[:start]
		if sec == secAnswer {
			pk.full = true
		}
		return false
	}
	binary.BigEndian.PutUint16(pk.b[rdlen:], uint16(len(pk.b)-rdlen-2))
	pk.count[sec]++
	return true
}

// record writes a record with the given RDATA in section sec.
func (pk *packer) record(sec int, o owner, rrtype uint16, rdata []byte, ttl uint32) bool {
	start, rdlen := pk.rr(o, rrtype, ttl)
	pk.b = append(pk.b, rdata...)
	return pk.end(sec, start, rdlen)
}

// addr writes an A or AAAA record, per ip's family.
func (pk *packer) addr(sec int, o owner, ip netip.Addr, ttl uint32) bool {
	if ip.Is4() {
		a := ip.As4()
		return pk.record(sec, o, dns.TypeA, a[:], ttl)
	}
	a := ip.As16()
	return pk.record(sec, o, dns.TypeAAAA, a[:], ttl)
}

// addrs writes ips of the asked family (qtype A or AAAA) in order and
// reports how many it wrote and whether all of them fit.
func (pk *packer) addrs(sec int, o owner, ips []netip.Addr, qtype uint16, ttl uint32) (int, bool) {
	n := 0
	for _, ip := range ips {
		if ip.Is4() != (qtype == dns.TypeA) {
			continue
		}
		if !pk.addr(sec, o, ip, ttl) {
			return n, false
		}
		n++
	}
	return n, true
}

// addrsAll writes ips of both families as one group: all of them, or none
// when they do not all fit (an additional section entry for a target).
func (pk *packer) addrsAll(sec int, o owner, ips []netip.Addr, ttl uint32) {
	mark, count := len(pk.b), pk.count[sec]
	for _, ip := range ips {
		if !pk.addr(sec, o, ip, ttl) {
			pk.b, pk.count[sec] = pk.b[:mark], count
			return
		}
	}
}

// srv writes an SRV record with target <host>.<svc>.<zone>, uncompressed
// as RFC 2782 asks, and returns the target's offset (for the additional
// records it owns) or -1 when it did not fit. Every record has priority 10,
// so clients spread load over all targets by weight: 10 for a passing
// instance, 1 for a warning one (registry.State.Weight).
func (pk *packer) srv(sec int, o owner, port, weight uint16, host string, svc, zone []byte, ttl uint32) int {
	start, rdlen := pk.rr(o, dns.TypeSRV, ttl)
	pk.b = append(pk.b, 0, 10) // priority
	pk.b = binary.BigEndian.AppendUint16(pk.b, weight)
	pk.b = binary.BigEndian.AppendUint16(pk.b, port)
	target := len(pk.b)
	pk.b = appendLabel(pk.b, host)
	pk.b = appendLabel(pk.b, svc)
	pk.b = append(pk.b, zone...)
	if !pk.end(sec, start, rdlen) {
		return -1
	}
	return target
}

// txt writes a TXT record from packed character strings.
func (pk *packer) txt(o owner, strs []byte, ttl uint32) bool {
	start, rdlen := pk.rr(o, dns.TypeTXT, ttl)
	pk.b = append(pk.b, strs...)
	return pk.end(secAnswer, start, rdlen)
}

// soa writes the zone's SOA (zone at offset zone) in section sec: primary
// ns.dns.Z, mailbox hostmaster.Z, serial the etcd revision served
// (truncated to 32 bits), minimum (negative TTL) the answer TTL.
func (pk *packer) soa(sec, zone int, serial uint32, ttl uint32) bool {
	start, rdlen := pk.rr(owner{at: zone}, dns.TypeSOA, ttl)
	pk.b = append(pk.b, 2, 'n', 's', 3, 'd', 'n', 's')
	pk.b = appendPointer(pk.b, zone)
	pk.b = append(pk.b, 10, 'h', 'o', 's', 't', 'm', 'a', 's', 't', 'e', 'r')
	pk.b = appendPointer(pk.b, zone)
	pk.b = binary.BigEndian.AppendUint32(pk.b, serial)
	pk.b = binary.BigEndian.AppendUint32(pk.b, 7200)
	pk.b = binary.BigEndian.AppendUint32(pk.b, 1800)
	pk.b = binary.BigEndian.AppendUint32(pk.b, 86400)
	pk.b = binary.BigEndian.AppendUint32(pk.b, ttl)
	return pk.end(sec, start, rdlen)
}

// ns writes the zone's NS record, target ns.dns.Z.
func (pk *packer) ns(zone int, ttl uint32) bool {
	start, rdlen := pk.rr(owner{at: zone}, dns.TypeNS, ttl)
	pk.b = append(pk.b, 2, 'n', 's', 3, 'd', 'n', 's')
	pk.b = appendPointer(pk.b, zone)
	return pk.end(secAnswer, start, rdlen)
}

// opt writes the response's OPT record as CoreDNS would make it from the
// request's (request.SizeAndDo): the request's UDP size, its flags without
// extended rcode and version, and the client subnet option when echoed.
// It always fits: its room was kept out of the limit.
func (pk *packer) opt(req *dns.OPT, ecs *dns.EDNS0_SUBNET) {
	pk.b = append(pk.b, 0) // root
	pk.b = binary.BigEndian.AppendUint16(pk.b, dns.TypeOPT)
	pk.b = binary.BigEndian.AppendUint16(pk.b, req.Hdr.Class)
	pk.b = binary.BigEndian.AppendUint32(pk.b, req.Hdr.Ttl&0xff00)
	rdlen := len(pk.b)
	pk.b = append(pk.b, 0, 0)
	if ecs != nil {
		pk.b = appendECS(pk.b, ecs)
	}
	binary.BigEndian.PutUint16(pk.b[rdlen:], uint16(len(pk.b)-rdlen-2))
	pk.count[secAdditional]++
}

// ecsLen is the wire length of a client subnet option with its header.
func ecsLen(e *dns.EDNS0_SUBNET) int {
	return 4 + 4 + int(e.SourceNetmask+7)/8
}

// appendECS echoes a client subnet option (RFC 7871) with a scope of the
// whole source prefix: the answer holds for every address in it only as
// far as the networks go, so a resolver must not reuse it beyond it.
func appendECS(b []byte, e *dns.EDNS0_SUBNET) []byte {
	n := int(e.SourceNetmask+7) / 8
	b = binary.BigEndian.AppendUint16(b, dns.EDNS0SUBNET)
	b = binary.BigEndian.AppendUint16(b, uint16(4+n))
	b = binary.BigEndian.AppendUint16(b, e.Family)
	b = append(b, e.SourceNetmask, e.SourceNetmask)
	addr := e.Address
	if e.Family == 1 {
		addr = addr.To4()
	} else {
		addr = addr.To16()
	}
	for i := 0; i < n; i++ {
		var c byte
		if i < len(addr) {
			c = addr[i]
		}
		if rest := int(e.SourceNetmask) - 8*i; rest < 8 {
			c &= byte(0xff << (8 - rest)) // bits past the prefix are zero
		}
		b = append(b, c)
	}
	return b
}
