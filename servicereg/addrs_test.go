package servicereg

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/rollcall/rollcall/registry"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestSortAddrs(t *testing.T) {
	nets := []Network{
		{Name: "vpn0", CIDRs: []netip.Prefix{netip.MustParsePrefix("10.100.0.0/16"), netip.MustParsePrefix("fd00:100::/32")}},
		// Overlaps vpn0: the first network in config order wins.
		{Name: "lan", CIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	}
	cases := []struct {
		name     string
		detected []netip.Addr
		explicit registry.Addrs
		want     string
	}{
		{name: "nothing", want: "map[]"},
		{name: "public only", detected: addrs("192.0.2.10", "2001:db8::10"), want: "map[public:[192.0.2.10 2001:db8::10]]"},
		{name: "loopback and link-local left out", detected: addrs("127.0.0.1", "::1", "fe80::1", "169.254.3.4", "192.0.2.10"),
			want: "map[public:[192.0.2.10]]"},
		{name: "first matching network wins", detected: addrs("10.100.0.5", "10.1.2.3", "fd00:100::5"),
			want: "map[lan:[10.1.2.3] vpn0:[10.100.0.5 fd00:100::5]]"},
		{name: "sorted and deduplicated", detected: addrs("192.0.2.20", "192.0.2.10", "192.0.2.20"),
			want: "map[public:[192.0.2.10 192.0.2.20]]"},
		{name: "IPv4-mapped unmapped", detected: addrs("::ffff:192.0.2.10"), want: "map[public:[192.0.2.10]]"},
		{name: "explicit network replaces detected of that network", detected: addrs("192.0.2.10", "10.100.0.5"),
			explicit: registry.Addrs{"public": addrs("198.51.100.1")},
			want:     "map[public:[198.51.100.1] vpn0:[10.100.0.5]]"},
		{name: "explicit network not configured for sorting", detected: addrs("192.0.2.10"),
			explicit: registry.Addrs{"wg0": addrs("10.200.0.1")},
			want:     "map[public:[192.0.2.10] wg0:[10.200.0.1]]"},
		{name: "explicit loopback kept (dev setups)", explicit: registry.Addrs{"public": addrs("127.0.0.1")},
			want: "map[public:[127.0.0.1]]"},
	}
	var many []netip.Addr
	for i := 70; i > 0; i-- {
		many = append(many, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
	}
	capped := SortAddrs(many, nil, nil)["public"]
	if len(capped) != registry.MaxAddrsPerNet || capped[0].String() != "192.0.2.1" {
		t.Errorf("70 addresses: kept %d starting %v, want the lowest %d", len(capped), capped[0], registry.MaxAddrsPerNet)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := SortAddrs(c.detected, nets, c.explicit)
			if s := fmt.Sprint(got); s != c.want {
				t.Fatalf("SortAddrs = %s, want %s", s, c.want)
			}
		})
	}
}
