package testkit

import "net/netip"

// LastAddr is the highest address of p: with p's first address, it tells
// whether p lies wholly inside another prefix, worked out apart from
// netip's own prefix arithmetic (which the code under test uses).
func LastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
