package rollcall

import (
	"math/bits"
	"net/netip"
)

// maxNetworks bounds the overlay networks of one server block, so a view is
// one uint64 bit set: bit i is the i-th `network` of the Corefile block.
const maxNetworks = 63

// network is one overlay declared by a Corefile `network NAME CIDR...` line.
type network struct {
	name     string
	prefixes []netip.Prefix
}

// viewSet is a set of networks, bit i for networks[i] (Corefile order).
type viewSet uint64

// contains reports whether any of the network's prefixes holds ip.
func (n *network) contains(ip netip.Addr) bool {
	for _, p := range n.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// covers reports whether one of the network's prefixes holds the whole of
// p: every address of p is on the network. p must be masked.
func (n *network) covers(p netip.Prefix) bool {
	for _, np := range n.prefixes {
		if np.Bits() <= p.Bits() && np.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// viewOf is the client's view: the networks whose ranges hold the client's
// address, plus, for a loopback client when `local` is set, the networks of
// the local host (local). ip must be unmapped. It is a small loop over a few
// prefixes and does not allocate.
func viewOf(nets []network, ip netip.Addr, local viewSet) viewSet {
	var v viewSet
	for i := range nets {
		if nets[i].contains(ip) {
			v |= 1 << uint(i)
		}
	}
	if ip.IsLoopback() {
		v |= local
	}
	return v
}

// viewOfPrefix is the view of a client known only by a prefix, its EDNS
// Client Subnet: the networks that hold every address of the prefix. A
// prefix that straddles a network's edge holds addresses off the network,
// and a resolver reuses the answer for all of them (RFC 7871 section 7.3.1),
// so it gets none of that network's addresses. Likewise `local` counts only
// for a prefix wholly on loopback. p must be masked and unmapped.
func viewOfPrefix(nets []network, p netip.Prefix, local viewSet) viewSet {
	var v viewSet
	for i := range nets {
		if nets[i].covers(p) {
			v |= 1 << uint(i)
		}
	}
	if loopback4.Bits() <= p.Bits() && loopback4.Contains(p.Addr()) || p == loopback6 {
		v |= local
	}
	return v
}

var (
	loopback4 = netip.MustParsePrefix("127.0.0.0/8")
	loopback6 = netip.MustParsePrefix("::1/128")
)

// pick chooses which address set of an instance a client gets: the first
// network (in Corefile order) that both the client's view and the instance's
// host are on, or public (returned as -1) when they share none.
func pick(view, hostNets viewSet) int {
	both := view & hostNets
	if both == 0 {
		return -1
	}
	return bits.TrailingZeros64(uint64(both))
}

// hostView is a host's own view, from its record's addresses by network:
// every declared network it lists addresses under, and every network whose
// ranges hold one of its addresses. It is what `hostview` gives a query
// from one of the host's addresses, and what `local` gives loopback
// clients of the local host.
func hostView(nets []network, addrs map[string][]netip.Addr) viewSet {
	var v viewSet
	for i, n := range nets {
		if len(addrs[n.name]) > 0 {
			v |= 1 << uint(i)
		}
	}
	for _, ips := range addrs {
		v |= networksOf(nets, ips)
	}
	return v
}

// networksOf is the set of networks an address list falls in: used for
// `local`, where the local host's view is wherever its own addresses are.
func networksOf(nets []network, addrs []netip.Addr) viewSet {
	var v viewSet
	for _, ip := range addrs {
		v |= viewOf(nets, ip.Unmap(), 0)
	}
	return v
}
