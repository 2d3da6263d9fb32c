package rollcall

import (
	"net/netip"
	"testing"
)

func testNets() []network {
	return []network{
		{name: "vpn0", prefixes: []netip.Prefix{netip.MustParsePrefix("10.100.0.0/16"), netip.MustParsePrefix("127.0.1.0/24")}},
		{name: "vpn1", prefixes: []netip.Prefix{netip.MustParsePrefix("10.200.0.0/16"), netip.MustParsePrefix("127.0.1.128/25"), netip.MustParsePrefix("fd00::/64")}},
	}
}

func TestViewOf(t *testing.T) {
	nets := testNets()
	tests := []struct {
		name  string
		ip    string
		local viewSet
		want  viewSet
	}{
		{name: "outside every network", ip: "192.0.2.9", want: 0},
		{name: "first network", ip: "10.100.3.4", want: 1},
		{name: "second network", ip: "10.200.3.4", want: 2},
		{name: "in both", ip: "127.0.1.200", want: 3},
		{name: "ipv6", ip: "fd00::9", want: 2},
		{name: "ipv6 outside", ip: "2001:db8::1", want: 0},
		{name: "loopback gets local view", ip: "127.0.0.1", local: 2, want: 2},
		{name: "loopback in a network adds local view", ip: "127.0.1.5", local: 2, want: 3},
		{name: "non-loopback ignores local view", ip: "192.0.2.9", local: 2, want: 0},
		{name: "ipv6 loopback gets local view", ip: "::1", local: 1, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := viewOf(nets, netip.MustParseAddr(tt.ip), tt.local); got != tt.want {
				t.Errorf("viewOf(%s) = %b, want %b", tt.ip, got, tt.want)
			}
		})
	}
}

func TestPick(t *testing.T) {
	tests := []struct {
		name           string
		view, hostNets viewSet
		want           int
	}{
		{name: "no view: public", view: 0, hostNets: 3, want: -1},
		{name: "host on no network: public", view: 3, hostNets: 0, want: -1},
		{name: "nothing shared: public", view: 1, hostNets: 2, want: -1},
		{name: "shared first", view: 1, hostNets: 3, want: 0},
		{name: "shared second", view: 2, hostNets: 3, want: 1},
		{name: "both shared: Corefile order wins", view: 3, hostNets: 3, want: 0},
		{name: "client on both, host on second", view: 3, hostNets: 2, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pick(tt.view, tt.hostNets); got != tt.want {
				t.Errorf("pick(%b, %b) = %d, want %d", tt.view, tt.hostNets, got, tt.want)
			}
		})
	}
}
