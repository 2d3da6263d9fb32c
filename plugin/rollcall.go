package rollcall

import (
	"context"
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
// the client's view (view.go) and writes the answer. It never calls etcd.
type Rollcall struct {
	Next plugin.Handler

	cfg *config
	ix  *index
	ld  *loader // set by OnStartup, shared with other blocks
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
	if !rc.ix.isLoaded() {
		// Before the first list nothing is known: NXDOMAIN would be
		// cached as a lie, so let the client retry (CoreDNS writes it).
		return dns.RcodeServerFailure, nil
	}
	var buf [maxName]byte
	qn := parseQuery(buf[:], q.Name[:cut])

	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	lim := limitOf(w, r)
	view, ecs := rc.viewOf(w, r)
	res, kind := rc.answer(m, zone, qn, q.Qtype, view, lim)
	requestsByKind[kind].Inc()

	if res == nameError && rc.cfg.fall.Through(q.Name) {
		return plugin.NextOrFailure(rc.Name(), rc.Next, ctx, w, r)
	}
	if ecs != nil {
		echoECS(m, r, ecs)
	}
	w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

// answer fills m for a parsed name and returns the outcome and the kind of
// name it was.
func (rc *Rollcall) answer(m *dns.Msg, zone int, qn qname, qtype uint16, view viewSet, lim int) (result, int) {
	var res result
	kind := kindUnknown
	var soa dns.RR
	switch qn.kind {
	case nameApex:
		var ns dns.RR
		soa, ns, _ = rc.ix.lookup(zone, nil)
		kind, res = kindApex, noData
		switch qtype {
		case dns.TypeSOA:
			m.Answer, res = []dns.RR{soa}, success
		case dns.TypeNS:
			m.Answer, res = []dns.RR{ns}, success
		}
	case nameOne:
		var sa *svcAnswers
		soa, _, sa = rc.ix.lookup(zone, qn.a)
		if sa != nil {
			kind, res = kindService, answerService(m, sa, qtype, view, lim)
			break
		}
		res = nameError
		if base := masterBase(qn.a); base != nil {
			if _, _, sa = rc.ix.lookup(zone, base); sa != nil && sa.master != nil {
				kind, res = kindMaster, answerMaster(m, sa.master, qtype, view, lim)
			}
		}
	case nameTwo:
		var sa *svcAnswers
		soa, _, sa = rc.ix.lookup(zone, qn.svc)
		res = nameError
		if sa == nil {
			break
		}
		if ia := sa.byHost[string(qn.a)]; ia != nil {
			kind, res = kindInstance, answerInstance(m, ia, qtype, view)
		} else if shard := sa.byShard[string(qn.a)]; shard != nil {
			kind, res = kindShard, answerShard(m, shard, qtype, view, lim)
		}
	case namePort:
		var sa *svcAnswers
		soa, _, sa = rc.ix.lookup(zone, qn.svc)
		res = nameError
		if sa != nil {
			if pa := sa.ports[string(qn.a)]; pa != nil {
				kind, res = kindPort, answerPort(m, pa, qtype, view, lim)
			}
		}
	default:
		soa, _, _ = rc.ix.lookup(zone, nil)
		res = nameError
	}
	switch res {
	case nameError:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{soa}
	case noData:
		m.Ns = []dns.RR{soa}
	}
	return res, kind
}

// viewOf returns the client's view: from its EDNS Client Subnet when `ecs`
// is on and the query carries one (returned too, to be echoed), else from
// its source address.
func (rc *Rollcall) viewOf(w dns.ResponseWriter, r *dns.Msg) (viewSet, *dns.EDNS0_SUBNET) {
	if len(rc.cfg.nets) == 0 {
		return 0, nil
	}
	var ip netip.Addr
	var ecs *dns.EDNS0_SUBNET
	if rc.cfg.ecs {
		ecs = ecsOption(r)
		if ecs != nil {
			ip, _ = netip.AddrFromSlice(ecs.Address)
			ip = ip.Unmap()
		}
	}
	if !ip.IsValid() {
		ip = remoteAddr(w)
	}
	var local viewSet
	if rc.cfg.local != "" && ip.IsLoopback() {
		local = rc.ix.view()
	}
	return viewOf(rc.cfg.nets, ip, local), ecs
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

func ecsOption(r *dns.Msg) *dns.EDNS0_SUBNET {
	opt := r.IsEdns0()
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

// echoECS returns the client subnet option (RFC 7871) with a scope of the
// whole source prefix: the answer holds for every address in it only as far
// as the networks go, so a resolver must not reuse it beyond that prefix.
func echoECS(m, r *dns.Msg, ecs *dns.EDNS0_SUBNET) {
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.SetUDPSize(r.IsEdns0().UDPSize())
	opt.Option = []dns.EDNS0{&dns.EDNS0_SUBNET{
		Code:          dns.EDNS0SUBNET,
		Family:        ecs.Family,
		SourceNetmask: ecs.SourceNetmask,
		SourceScope:   ecs.SourceNetmask,
		Address:       ecs.Address,
	}}
	m.Extra = append(m.Extra, opt)
}
