package servicereg

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/rollcall/rollcall/registry"
)

// SortAddrs decides the host record's addresses: each detected address goes to
// the first network (in config order) one of whose CIDRs holds it, and to
// "public" when none does. Loopback, link-local, multicast and unspecified
// addresses are left out: no other host can reach them. A network listed in
// explicit takes exactly the explicit addresses, whatever was detected for it.
// Each network's addresses come out sorted and without repeats (at most
// registry.MaxAddrsPerNet, the lowest), so two calls on the same inputs give
// equal records.
func SortAddrs(detected []netip.Addr, networks []Network, explicit registry.Addrs) registry.Addrs {
	out := registry.Addrs{}
	for _, a := range detected {
		a = a.Unmap().WithZone("")
		if !a.IsValid() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
			a.IsMulticast() || a.IsUnspecified() {
			continue
		}
		nw := networkOf(a, networks)
		if _, ok := explicit[nw]; ok {
			continue
		}
		out[nw] = append(out[nw], a)
	}
	for nw, as := range explicit {
		if len(as) > 0 {
			out[nw] = append([]netip.Addr(nil), as...)
		}
	}
	for nw, as := range out {
		slices.SortFunc(as, func(x, y netip.Addr) int { return x.Compare(y) })
		as = slices.Compact(as)
		// A record holds at most MaxAddrsPerNet per network; a host with
		// more keeps the lowest, so the choice is stable.
		if len(as) > registry.MaxAddrsPerNet {
			as = as[:registry.MaxAddrsPerNet]
		}
		out[nw] = as
	}
	return out
}

func networkOf(a netip.Addr, networks []Network) string {
	for _, nw := range networks {
		for _, p := range nw.CIDRs {
			if p.Contains(a) {
				return nw.Name
			}
		}
	}
	return registry.PublicNetwork
}

// DetectAddrs lists the addresses of the host's interfaces that are up.
// SortAddrs drops the ones other hosts cannot use.
func DetectAddrs() ([]netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	var out []netip.Addr
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of interface %s: %w", ifc.Name, err)
		}
		for _, ad := range addrs {
			ipn, ok := ad.(*net.IPNet)
			if !ok {
				continue
			}
			if a, ok := netip.AddrFromSlice(ipn.IP); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	return out, nil
}

// equalAddrs reports whether two sorted Addrs hold the same addresses.
func equalAddrs(x, y registry.Addrs) bool {
	if len(x) != len(y) {
		return false
	}
	for nw, as := range x {
		if !slices.Equal(as, y[nw]) {
			return false
		}
	}
	return true
}
