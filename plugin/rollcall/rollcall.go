package rollcall

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"
)

// pluginName is the Corefile directive and the handler name.
const pluginName = "rollcall"

// Rollcall is the handler of one server block. ServeDNS is the DNS query
// path: it parses the name (parse.go), looks it up in the in-memory index
// (index.go) that the loader (loader.go) keeps up to date from etcd, picks
// the client's view (view.go) and packs the answer (answer.go, wire.go). It
// never calls etcd.
type Rollcall struct {
	Next plugin.Handler

	cfg   *config
	ix    *index
	hv    *hostViews // `hostview`: each registered address's host view; nil when off
	zones [][]byte   // cfg.zones packed, same order
	ld    *loader    // set by OnStartup, shared with other blocks
	// logs is the block's log plugins, set by OnStartup: whose recorders
	// get the reply's record types only (recorders.go).
	logs []logPlugin
}

func newRollcall(cfg *config) *Rollcall {
	rc := &Rollcall{cfg: cfg, ix: newIndex(cfg.nets, cfg.local)}
	if cfg.hostview {
		rc.hv = newHostViews(cfg.nets)
	}
	rc.ix.failClosed = cfg.failClosed
	for _, z := range cfg.zones {
		rc.zones = append(rc.zones, packZone(z))
	}
	return rc
}

// Name implements plugin.Handler.
func (rc *Rollcall) Name() string { return pluginName }

// result is the outcome of a lookup, mapped to a response in one switch.
type result uint8

const (
	success   result = iota // answers found
	noData                  // the name exists, not with this type
	nameError               // the name does not exist
)

// Request kinds, the `kind` label of coredns_rollcall_requests_total.
const (
	kindApex = iota
	kindService
	kindInstance
	kindShard
	kindPort
	kindMaster
	kindUnknown
	numKinds
)

var kindNames = [numKinds]string{"apex", "service", "instance", "shard", "port", "master", "unknown"}

// ServeDNS implements plugin.Handler.
func (rc *Rollcall) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) != 1 {
		return plugin.NextOrFailure(rc.Name(), rc.Next, ctx, w, r)
	}
	q := r.Question[0]
	zone, cut := zoneOf(rc.cfg.zones, q.Name)
	if zone < 0 || q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return plugin.NextOrFailure(rc.Name(), rc.Next, ctx, w, r)
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		// The registry is not a zone to copy: who may see which address
		// depends on the client (CoreDNS writes the REFUSED).
		return dns.RcodeRefused, nil
	}
	if !rc.ix.isLoaded() {
		// Before the first list nothing is known: NXDOMAIN would be
		// cached as a lie, so let the client retry (CoreDNS writes it).
		return dns.RcodeServerFailure, nil
	}
	var buf [maxName]byte
	f := rc.ix.find(parseQuery(buf[:], q.Name[:cut]))
	requestsByKind[f.kind].Inc()
	if f.res == nameError && rc.cfg.fall.Through(q.Name) {
		return plugin.NextOrFailure(rc.Name(), rc.Next, ctx, w, r)
	}
	opt := r.IsEdns0()
	view, ecs := rc.viewOf(w, opt)
	return rc.respond(w, r, opt, zone, &f, view, ecs)
}

// respond packs the answer to r and writes it: as packed when the writers
// between this plugin and the connection are CoreDNS's own and the
// recorders of prometheus and log (recorders.go), else unpacked into a
// dns.Msg so that other wrapping plugins (rewrite, cache...) see it.
// opt is the request's OPT record, or nil.
func (rc *Rollcall) respond(w dns.ResponseWriter, r *dns.Msg, opt *dns.OPT, zone int, f *found, view viewSet, ecs *dns.EDNS0_SUBNET) (int, error) {
	q := r.Question[0]
	raw := rawWriter(w, r, opt, rc.logs)
	limit := sizeLimit(w, opt)
	if opt != nil {
		// Room for the OPT record CoreDNS (or this, when raw) adds.
		limit -= optLen
		if ecs != nil {
			limit -= ecsLen(ecs)
		}
	}
	pk := getPacker(limit)
	defer putPacker(pk)
	if !pk.header(r, q, dns.RcodeSuccess) {
		return dns.RcodeFormatError, nil
	}
	zw := rc.zones[zone]
	p := reply{pk: pk, qtype: q.Qtype, view: view, ttl: rc.cfg.ttl, max: rc.cfg.maxAnswers, zone: zw, zoneAt: pk.suffix(len(zw)), svcAt: headerLen}
	if len(f.svc) > 0 && f.kind != kindService && f.kind != kindMaster {
		p.svcAt = pk.suffix(1 + len(f.svc) + len(zw))
	}
	p.answer(f)
	var size int
	if raw.recorded {
		// What the recorders would count through WriteMsg: the reply as
		// handed on, a dns.Msg not compressed, without the OPT record
		// CoreDNS adds (unless it carries the client subnet echo).
		var ok bool
		if size, ok = msgLen(pk.b); !ok {
			raw = rawPath{}
		} else if opt != nil && ecs != nil {
			size += optLen + ecsLen(ecs)
		}
	}
	// Packed as is, the reply carries its OPT record; handed on as a
	// dns.Msg, CoreDNS adds the request's, with the options it copies,
	// unless the reply has one: only for the client subnet echo.
	if opt != nil && (raw.out != nil || ecs != nil) {
		pk.opt(opt, ecs)
	}
	pk.finish()
	if raw.out != nil {
		if raw.recorded {
			if err := record(w, raw.need, pk.b, q, size); err != nil {
				// A bug here, never the client's doing: say what was asked.
				return dns.RcodeServerFailure, fmt.Errorf("unpack own answer to %s %s: %w", q.Name, dns.Type(q.Qtype), err)
			}
		}
		if _, err := raw.out.Write(pk.b); err != nil {
			err = fmt.Errorf("write answer to %v: %w", w.RemoteAddr(), err)
			if raw.recorded {
				// The recorders hold the answer, as WriteMsg leaves them
				// whether or not the write fails; a failure rcode would
				// have prometheus count SERVFAIL instead.
				return dns.RcodeSuccess, err
			}
			return dns.RcodeServerFailure, err
		}
		return dns.RcodeSuccess, nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(pk.b); err != nil {
		// A bug here, never the client's doing: say what was asked.
		return dns.RcodeServerFailure, fmt.Errorf("unpack own answer to %s %s: %w", q.Name, dns.Type(q.Qtype), err)
	}
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// sizeLimit is the largest reply the client takes: over UDP its EDNS0
// buffer size (at least 512), over TCP 64 KiB, as CoreDNS's scrubbing.
func sizeLimit(w dns.ResponseWriter, opt *dns.OPT) int {
	if _, ok := w.RemoteAddr().(*net.UDPAddr); !ok {
		return dns.MaxMsgSize
	}
	size := dns.MinMsgSize
	if opt != nil && int(opt.UDPSize()) > size {
		size = int(opt.UDPSize())
	}
	return size
}

// viewOf returns the client's view: from its EDNS Client Subnet when `ecs`
// is on and the query carries one (returned too, to be echoed), else from
// its source address (viewOfAddr). opt is the request's OPT record, or nil.
//
// ECS comes first: a query that carries it was sent by a resolver on
// behalf of a client elsewhere, and the resolver caches the answer for the
// client's subnet, so neither the resolver's own host nor its address may
// choose the view.
func (rc *Rollcall) viewOf(w dns.ResponseWriter, opt *dns.OPT) (viewSet, *dns.EDNS0_SUBNET) {
	if len(rc.cfg.nets) == 0 {
		return 0, nil
	}
	if rc.cfg.ecs {
		if ecs := ecsOption(opt); ecs != nil {
			if p, ok := ecsPrefix(ecs); ok {
				var local viewSet
				if rc.cfg.local != "" {
					local = rc.ix.view()
				}
				return viewOfPrefix(rc.cfg.nets, p, local), ecs
			}
		}
	}
	return rc.viewOfAddr(remoteAddr(w)), nil
}

// viewOfAddr is the view of a client known by its (unmapped) source
// address: with `hostview`, the view of the host that registered the
// address, when exactly one did; else the networks whose ranges hold the
// address, plus the local host's for a loopback client under `local`.
//
// hostview comes before the plain rule because it knows more: a query from
// a host's own address (a per-host server forwarding its host's queries)
// is that host's, and the host is on every network its record lists, where
// the address alone shows at most the networks it falls in (none for a
// public address, one of several for a host on several overlays). It comes
// before `local` too: a registered loopback address names its host, while
// `local` assumes every loopback client is the local host. An address no
// host or several hosts list keeps the plain rule. It does not allocate.
func (rc *Rollcall) viewOfAddr(ip netip.Addr) viewSet {
	if len(rc.cfg.nets) == 0 {
		return 0
	}
	if rc.hv != nil {
		if v, ok := rc.hv.lookup(ip); ok {
			return v
		}
	}
	var local viewSet
	if rc.cfg.local != "" && ip.IsLoopback() {
		local = rc.ix.view()
	}
	return viewOf(rc.cfg.nets, ip, local)
}

// ecsPrefix is the source prefix of a client subnet option, masked, with an
// IPv4 prefix written as IPv4-mapped IPv6 taken as the IPv4 prefix. ok is
// false for an option that names no prefix (a family other than IPv4 or
// IPv6, or a length longer than its address).
func ecsPrefix(e *dns.EDNS0_SUBNET) (netip.Prefix, bool) {
	bits := int(e.SourceNetmask)
	var ip netip.Addr
	switch e.Family {
	case 0, 1: // 0: dig's way of saying "no address", with length 0
		a := e.Address.To4()
		if a == nil || bits > 32 || e.Family == 0 && bits != 0 {
			return netip.Prefix{}, false
		}
		ip = netip.AddrFrom4([4]byte(a))
	case 2:
		a := e.Address.To16()
		if a == nil || bits > 128 {
			return netip.Prefix{}, false
		}
		ip = netip.AddrFrom16([16]byte(a))
		if ip.Is4In6() && bits >= 96 {
			ip, bits = ip.Unmap(), bits-96
		}
	default:
		return netip.Prefix{}, false
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}

func remoteAddr(w dns.ResponseWriter) netip.Addr {
	var ip net.IP
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

func ecsOption(opt *dns.OPT) *dns.EDNS0_SUBNET {
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			return e
		}
	}
	return nil
}
