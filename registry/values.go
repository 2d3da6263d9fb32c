package registry

import (
	"errors"
	"net/netip"
)

// ErrBadNetwork is wrapped by every CIDR validation failure.
var ErrBadNetwork = errors.New("registry: bad network")

// The checks of single values below are the only ones: records (Port,
// Addrs), the agent's config and its parser all call them, so a value is
// valid in one place exactly when it is valid in the others. Each returns a
// *ValueError whose Problem names the value and what to write instead.

// CheckPortNumber checks a port number: 1-65535.
func CheckPortNumber(n int) error {
	if n < 1 || n > 65535 {
		return valueErrorf(ErrBadRecord, "%d is outside 1-65535", n)
	}
	return nil
}

// CheckProto checks a port's protocol: tcp or udp, the two SRV serves.
func CheckProto(proto string) error {
	if proto != "tcp" && proto != "udp" {
		return valueErrorf(ErrBadRecord, "%q must be tcp or udp", proto)
	}
	return nil
}

// CheckAddr checks an address that other hosts are to be given: a specified
// IPv4 or IPv6 address, without a zone, and IPv4 written as IPv4.
func CheckAddr(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return valueErrorf(ErrBadRecord, "address is empty")
	case a.Zone() != "":
		return valueErrorf(ErrBadRecord, "address %s has a zone, which other hosts cannot use", a)
	case a.IsUnspecified():
		return valueErrorf(ErrBadRecord, "address %s is unspecified", a)
	case a.Is4In6():
		return valueErrorf(ErrBadRecord, "address %s is IPv4-mapped IPv6: write %s", a, a.Unmap())
	}
	return nil
}

// ParseAddr parses an address as written by a person and checks it
// (CheckAddr).
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, valueErrorf(ErrBadRecord, "%q is not an IP address", s)
	}
	return a, CheckAddr(a)
}

// CheckCIDR checks the CIDR of a network: a valid prefix with no host bits
// set. A CIDR with host bits is refused rather than masked: 10.100.0.1/16
// more likely means a mistyped address than the network 10.100.0.0/16.
func CheckCIDR(p netip.Prefix) error {
	return checkCIDR(p, p.String())
}

// ParseCIDR parses a network's CIDR as written by a person and checks it
// (CheckCIDR); messages quote it as written.
func ParseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, valueErrorf(ErrBadNetwork, "%q is not a CIDR such as 10.100.0.0/16 or fd00::/64", s)
	}
	return p, checkCIDR(p, s)
}

func checkCIDR(p netip.Prefix, spelled string) error {
	switch {
	case !p.IsValid():
		return valueErrorf(ErrBadNetwork, "CIDR is empty: write one such as 10.100.0.0/16 or fd00::/64")
	case p != p.Masked():
		return valueErrorf(ErrBadNetwork, "%q has host bits set: write %s", spelled, p.Masked())
	}
	return nil
}
