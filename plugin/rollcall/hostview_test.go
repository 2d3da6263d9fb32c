package rollcall

// hostview: the view of the host that registered a query's source address
// (hostview.go), its precedence against ecs, local and the plain rule
// (Rollcall.viewOfAddr), and its map kept by updates exactly as a fresh
// build would have it.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"

	"github.com/rollcall/rollcall/registry"
)

// HostviewNets is the networks of every hostview block.
const HostviewNets = "network vpn0 10.100.0.0/16\nnetwork vpn1 10.200.0.0/16\n"

// HostviewKVs is the registry of the hostview tests. Hosts' public addresses
// are in 127.0.3.0/24, so that tests over real sockets can send from them;
// 127.0.3.9 is listed by two hosts (as a docker0 address is by many), and
// hr lists a loopback address that `local` would otherwise claim. web runs
// on ha (vpn0), hb (vpn1) and hc (both), so its A answer tells the view:
// an instance's vpn0 address for vpn0, its vpn1 address for vpn1, else its
// public one.
func HostviewKVs() []FixtureKV {
	host := func(name, addrs string) FixtureKV {
		return FixtureKV{"/rollcall/hosts/" + name + "/host", `{"name":"` + name + `","addrs":` + addrs + `}`}
	}
	inst := func(h string) FixtureKV {
		return FixtureKV{"/rollcall/hosts/" + h + "/services/web", `{"service":"web","host":"` + h + `"}`}
	}
	return []FixtureKV{
		host("ha", `{"public":["127.0.3.1"],"vpn0":["10.100.0.1"]}`),
		host("hb", `{"public":["127.0.3.2"],"vpn1":["10.200.0.2"]}`),
		host("hc", `{"public":["127.0.3.3"],"vpn0":["10.100.0.3"],"vpn1":["10.200.0.3"]}`),
		host("hd", `{"public":["127.0.3.4","127.0.3.9"],"vpn0":["10.100.0.4"]}`),
		host("he", `{"public":["127.0.3.5","127.0.3.9"],"vpn1":["10.200.0.5"]}`),
		host("hl", `{"public":["192.0.2.50"],"vpn1":["10.200.0.50"]}`),
		host("hr", `{"public":["127.0.0.7"],"vpn0":["10.100.0.7"]}`),
		inst("ha"), inst("hb"), inst("hc"),
	}
}

// HostviewWeb is web's A answer, sorted, for each view: none, vpn0, vpn1,
// both.
var HostviewWeb = map[string][]string{
	"none": {"127.0.3.1", "127.0.3.2", "127.0.3.3"},
	"vpn0": {"10.100.0.1", "10.100.0.3", "127.0.3.2"},
	"vpn1": {"10.200.0.2", "10.200.0.3", "127.0.3.1"},
	"both": {"10.100.0.1", "10.100.0.3", "10.200.0.2"},
}

// HostviewCase is a query for web from an address, with ECS or not, and
// the view whose answer it must get.
type HostviewCase struct {
	Name string
	Body string // the block's options besides HostviewNets
	From string
	ECS  string // "" or an IPv4 prefix
	View string // a key of HostviewWeb
}

// HostviewCases is the precedence: ecs, then hostview, then the plain rule
// (the networks of the address, and the local host's for loopback under
// local).
var HostviewCases = []HostviewCase{
	{Name: "public address of a vpn0 host", Body: "hostview", From: "127.0.3.1", View: "vpn0"},
	{Name: "public address of a vpn1 host", Body: "hostview", From: "127.0.3.2", View: "vpn1"},
	{Name: "host on both overlays", Body: "hostview", From: "127.0.3.3", View: "both"},
	{Name: "overlay address of a host on both: its whole view", Body: "hostview", From: "10.100.0.3", View: "both"},
	{Name: "overlay address: the plain rule agrees", Body: "hostview", From: "10.200.0.2", View: "vpn1"},
	{Name: "an address two hosts list: the plain rule", Body: "hostview", From: "127.0.3.9", View: "none"},
	{Name: "the other address of a host with a shared one", Body: "hostview", From: "127.0.3.4", View: "vpn0"},
	{Name: "unregistered address: the plain rule", Body: "hostview", From: "127.0.9.9", View: "none"},
	{Name: "unregistered overlay address: the plain rule", Body: "hostview", From: "10.200.9.9", View: "vpn1"},
	{Name: "ecs wins over hostview", Body: "hostview\necs", From: "127.0.3.1", ECS: "10.200.7.0/24", View: "vpn1"},
	{Name: "ecs of no network wins over hostview", Body: "hostview\necs", From: "127.0.3.2", ECS: "192.0.2.0/24", View: "none"},
	{Name: "ecs on, none sent: hostview", Body: "hostview\necs", From: "127.0.3.2", View: "vpn1"},
	{Name: "registered loopback: hostview over local", Body: "hostview\nlocal hl", From: "127.0.0.7", View: "vpn0"},
	{Name: "unregistered loopback: local", Body: "hostview\nlocal hl", From: "127.0.0.1", View: "vpn1"},
	{Name: "shared loopback address: local", Body: "hostview\nlocal hl", From: "127.0.3.9", View: "vpn1"},
	{Name: "without hostview: the plain rule", Body: "", From: "127.0.3.1", View: "none"},
	{Name: "without hostview, local: loopback is the local host", Body: "local hl", From: "127.0.3.1", View: "vpn1"},
}

// Msg is the case's query for web in zone.
func (c HostviewCase) Msg(zone string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion("web."+zone, dns.TypeA)
	if c.ECS != "" {
		p := netip.MustParsePrefix(c.ECS)
		m.SetEdns0(1232, false)
		e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), Address: net.IP(p.Addr().AsSlice())}
		m.IsEdns0().Option = append(m.IsEdns0().Option, e)
	}
	return m
}

// CheckHostview fails t unless m answers web with the case's view.
func CheckHostview(t testing.TB, c HostviewCase, m *dns.Msg) {
	t.Helper()
	var got []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			got = append(got, a.A.String())
		}
	}
	slices.Sort(got)
	if want := HostviewWeb[c.View]; !reflect.DeepEqual(got, want) {
		t.Errorf("from %s (ecs %q): web is %v, want %v: the %s view", c.From, c.ECS, got, want, c.View)
	}
}

func hostviewState(t testing.TB, kvs []FixtureKV) *state {
	t.Helper()
	st := newState(registry.MustKeys(registry.DefaultPrefix))
	ch := newChanges()
	for i, kv := range kvs {
		if err := st.put(kv.Key, []byte(kv.Value), int64(i+1), ch); err != nil {
			t.Fatalf("put %s: %v", kv.Key, err)
		}
	}
	st.rev = int64(len(kvs))
	return st
}

// hostviewHandler builds a block of zone hv.example. from body, filled from
// st as its loader would fill it: the index and the host map.
func hostviewHandler(t testing.TB, body string, st *state) *Rollcall {
	t.Helper()
	cfg, err := parse(caddy.NewTestController("dns", "rollcall hv.example. {\n"+HostviewNets+body+"\n}"))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	rc := newRollcall(cfg)
	rc.Next = test.ErrorHandler()
	rc.ix.replace(st)
	if rc.hv != nil {
		rc.hv.replace(st)
	}
	return rc
}

func TestHostviewPrecedence(t *testing.T) {
	st := hostviewState(t, HostviewKVs())
	for _, c := range HostviewCases {
		t.Run(c.Name, func(t *testing.T) {
			h := hostviewHandler(t, c.Body, st)
			rec := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: c.From})
			if _, err := h.ServeDNS(context.Background(), rec, c.Msg("hv.example.")); err != nil {
				t.Fatalf("ServeDNS: %v", err)
			}
			CheckHostview(t, c, rec.Msg)
		})
	}
}

func TestHostView(t *testing.T) {
	nets := testNets() // vpn0: 10.100/16, 127.0.1/24; vpn1: 10.200/16, 127.0.1.128/25, fd00::/64
	ip := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	tests := []struct {
		name  string
		addrs map[string][]netip.Addr
		want  viewSet
	}{
		{name: "public only", addrs: map[string][]netip.Addr{"public": ip("192.0.2.1")}, want: 0},
		{name: "listed under a network", addrs: map[string][]netip.Addr{"public": ip("192.0.2.1"), "vpn1": ip("192.0.2.200")}, want: 2},
		{name: "public address inside a network's range", addrs: map[string][]netip.Addr{"public": ip("10.100.0.9")}, want: 1},
		{name: "both ways", addrs: map[string][]netip.Addr{"vpn0": ip("10.100.0.9"), "public": ip("fd00::9")}, want: 3},
		{name: "undeclared network counts for nothing", addrs: map[string][]netip.Addr{"vpn9": ip("172.16.0.1")}, want: 0},
		{name: "empty list", addrs: map[string][]netip.Addr{"vpn0": nil}, want: 0},
		{name: "no record addresses", addrs: nil, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostView(nets, tt.addrs); got != tt.want {
				t.Errorf("hostView = %b, want %b", got, tt.want)
			}
		})
	}
}

// hostKV is host name's record listing addrs as public, and vpn0/vpn1
// addresses when on says so.
func hostKV(name string, addrs []string, on viewSet) (string, string) {
	nets := map[string][]string{"public": addrs}
	if on&1 != 0 {
		nets["vpn0"] = []string{"10.100.0.1"}
	}
	if on&2 != 0 {
		nets["vpn1"] = []string{"10.200.0.1"}
	}
	var parts []string
	for _, n := range []string{"public", "vpn0", "vpn1"} {
		if a, ok := nets[n]; ok {
			parts = append(parts, fmt.Sprintf("%q:[%s]", n, `"`+strings.Join(a, `","`)+`"`))
		}
	}
	return "/rollcall/hosts/" + name + "/host", fmt.Sprintf(`{"name":%q,"addrs":{%s}}`, name, strings.Join(parts, ","))
}

// TestHostViewsUpdate changes host records at random, a few at a time, and
// checks after every batch that the map kept by updates is the one a fresh
// build from the same state makes: the same views, the same shared count.
func TestHostViewsUpdate(t *testing.T) {
	nets := testNets()
	rng := rand.New(rand.NewPCG(1, 2))
	pool := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "10.100.7.7", "fd00::7"}
	hosts := []string{"a", "b", "c", "d", "e"}
	st := newState(registry.MustKeys(registry.DefaultPrefix))
	hv := newHostViews(nets)
	hv.replace(st)
	for round := range 500 {
		ch := newChanges()
		for range 1 + rng.IntN(3) {
			name := hosts[rng.IntN(len(hosts))]
			if rng.IntN(4) == 0 {
				st.del("/rollcall/hosts/"+name+"/host", ch)
				continue
			}
			var addrs []string
			for _, a := range pool {
				if rng.IntN(3) == 0 {
					addrs = append(addrs, a)
				}
			}
			if len(addrs) == 0 {
				addrs = []string{pool[0]}
			}
			k, v := hostKV(name, addrs, viewSet(rng.IntN(4)))
			if err := st.put(k, []byte(v), int64(round+1), ch); err != nil {
				t.Fatalf("put %s: %v", v, err)
			}
		}
		hv.update(st, ch)
		fresh := newHostViews(nets)
		fresh.replace(st)
		if !reflect.DeepEqual(hv.views, fresh.views) || hv.shared != fresh.shared {
			t.Fatalf("round %d: updated map %v (%d shared), a fresh build %v (%d shared)", round, hv.views, hv.shared, fresh.views, fresh.shared)
		}
		for ip, owners := range hv.owners {
			if !slices.IsSorted(owners) || len(owners) == 0 || !reflect.DeepEqual(owners, fresh.owners[ip]) {
				t.Fatalf("round %d: owners of %v: %v, fresh %v", round, ip, owners, fresh.owners[ip])
			}
		}
	}
}

// TestHostViewsShared: an address becomes shared when a second host lists
// it and its own again when the other lets go, with the metric following.
func TestHostViewsShared(t *testing.T) {
	st := hostviewState(t, HostviewKVs())
	hv := newHostViews([]network{{name: "vpn0", prefixes: []netip.Prefix{netip.MustParsePrefix("10.100.0.0/16")}}})
	hv.source = "/test@hostview-shared"
	t.Cleanup(func() { hostviewShared.DeleteLabelValues(hv.source) })
	hv.replace(st)
	gauge := func() float64 {
		var m dto.Metric
		if err := hostviewShared.WithLabelValues(hv.source).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue()
	}
	a, shared := netip.MustParseAddr("127.0.3.1"), netip.MustParseAddr("127.0.3.9")
	if v, ok := hv.lookup(a); !ok || v != 1 {
		t.Fatalf("ha's address: view %b %v, want vpn0", v, ok)
	}
	if _, ok := hv.lookup(shared); ok || gauge() != 1 {
		t.Fatalf("address of hd and he: found %v, shared gauge %v; want the plain rule and 1", ok, gauge())
	}

	ch := newChanges()
	_ = st.put("/rollcall/hosts/hx/host", []byte(`{"name":"hx","addrs":{"public":["127.0.3.1"]}}`), 100, ch)
	hv.update(st, ch)
	if _, ok := hv.lookup(a); ok || gauge() != 2 {
		t.Fatalf("ha's address listed by hx too: found %v, gauge %v; want the plain rule and 2", ok, gauge())
	}

	ch = newChanges()
	st.del("/rollcall/hosts/hx/host", ch)
	st.del("/rollcall/hosts/he/host", ch)
	hv.update(st, ch)
	if v, ok := hv.lookup(a); !ok || v != 1 {
		t.Fatalf("hx gone: ha's address %b %v, want vpn0", v, ok)
	}
	if v, ok := hv.lookup(shared); !ok || v != 1 || gauge() != 0 {
		t.Fatalf("he gone: hd's 127.0.3.9 %b %v, gauge %v; want vpn0 and 0", v, ok, gauge())
	}
}

// TestHostviewAllocs keeps the hostview lookup off the allocator, like the
// rest of the query path (TestQueryPathAllocs).
func TestHostviewAllocs(t *testing.T) {
	h := hostviewHandler(t, "hostview", hostviewState(t, HostviewKVs()))
	for _, from := range []string{"127.0.3.1", "127.0.3.3", "127.0.3.9", "127.0.9.9"} {
		w := &captureWriter{addr: &net.UDPAddr{IP: net.ParseIP(from), Port: 53000}}
		r := new(dns.Msg)
		r.SetQuestion("web.hv.example.", dns.TypeA)
		sw := request.NewScrubWriter(r, w)
		ctx := context.Background()
		allocs := testing.AllocsPerRun(200, func() {
			h.ServeDNS(ctx, sw, r)
		})
		// captureWriter.Write copies the answer: one allocation.
		if allocs > 1 {
			t.Errorf("from %s: %.0f allocations per query, want none of the plugin's own", from, allocs-1)
		}
	}
}
