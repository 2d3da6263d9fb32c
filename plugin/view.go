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

// networksOf is the set of networks an address list falls in: used for
// `local`, where the local host's view is wherever its own addresses are.
func networksOf(nets []network, addrs []netip.Addr) viewSet {
	var v viewSet
	for _, ip := range addrs {
		v |= viewOf(nets, ip.Unmap(), 0)
	}
	return v
}
