package resolvers

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestThroughResolvers asks every kind of rollcall name through unbound (a
// stub zone), dnsmasq (a forwarded domain) and BIND's named (a forward
// zone), each a fresh cache in front of one bin/coredns, with miekg/dns,
// Go's resolver and glibc's. The resolvers run at once; the questions to
// one resolver run in order, since some depend on what its cache holds
// (the master's TXT is asked after its A, the port name after the empty
// non-terminal above it).
func TestThroughResolvers(t *testing.T) {
	t.Parallel()
	e, term := registryData(t)
	c := startCoreDNS(t, e, zone, "")
	kinds := []struct {
		name  string
		start func(*testing.T) *resolver
	}{
		{"unbound", func(t *testing.T) *resolver { return startUnbound(t, c, unboundOpts{}) }},
		{"dnsmasq", func(t *testing.T) *resolver { return startDnsmasq(t, c, "") }},
		{"named", func(t *testing.T) *resolver { return startNamed(t, map[string]*coreDNS{zone: c}) }},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			s := &suite{r: k.start(t), term: term}
			s.run(t)
		})
	}
}

// suite is the checks made through one resolver.
type suite struct {
	r    *resolver
	term int64 // web's master term
}

func (s *suite) ask(t *testing.T, netw, name string, qtype uint16, opts ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	return ask(t, s.r.addr, netw, "", name, qtype, opts...)
}

func (s *suite) run(t *testing.T) {
	t.Run("ANY", s.any)
	t.Run("empty non-terminal", s.emptyNonTerminal)
	t.Run("service A and AAAA", s.service)
	t.Run("instance A and AAAA", s.instance)
	t.Run("SRV targets resolve", s.srv)
	t.Run("master A", s.masterA)
	t.Run("master TXT after A", s.masterTXT)
	t.Run("master AAAA and SRV", s.masterOther)
	t.Run("NXDOMAIN", s.nxdomain)
	t.Run("NODATA", s.nodata)
	t.Run("truncated then TCP", s.truncation)
	t.Run("Go resolver", s.goResolver)
	t.Run("glibc resolver", s.glibc)
}

// any asks ANY for web before anything else about web, so the resolver
// must ask CoreDNS (a cache may answer ANY from what it holds). RFC 8482:
// NOERROR with at least one RRset that exists there (or HINFO "RFC8482"),
// never an empty answer. BIND caches an empty ANY answer as "no data of any
// type" at the name: with NODATA here, web's A, AAAA and SRV through BIND
// come back NODATA too for the TTL (so do the Go and glibc checks).
func (s *suite) any(t *testing.T) {
	name := "web." + zone
	m := s.ask(t, "udp", name, dns.TypeANY, edns)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
		t.Fatalf("ANY %s through %s: %s; want NOERROR with an RRset that exists there or HINFO \"RFC8482\" (RFC 8482), not NODATA", name, s.r.name, describe(m))
	}
	t.Logf("ANY %s through %s: %s", name, s.r.name, describe(m))
	public := append(webAddrs(nil, false), webAddrs(nil, true)...)
	for _, rr := range m.Answer {
		if !strings.EqualFold(rr.Header().Name, name) {
			t.Errorf("ANY %s: record of another owner: %s", name, rr)
		}
		switch r := rr.(type) {
		case *dns.A, *dns.AAAA:
			if a := sorted([]dns.RR{r}, ""); !slices.Contains(public, a[0]) {
				t.Errorf("ANY %s: address %s is not one of web's public addresses %v", name, a[0], public)
			}
		case *dns.HINFO:
			if r.Cpu != "RFC8482" {
				t.Errorf("ANY %s: HINFO %q %q, want \"RFC8482\"", name, r.Cpu, r.Os)
			}
		case *dns.SRV:
		default:
			t.Errorf("ANY %s: unexpected record %s", name, rr)
		}
	}
}

// emptyNonTerminal asks _tcp.web, which exists only as the parent of
// _http._tcp.web: NODATA with the SOA (RFC 8020: NXDOMAIN would mean that
// nothing exists below it either, and a resolver may then deny
// _http._tcp.web from its cache). The port name is asked afterwards and
// must still answer.
func (s *suite) emptyNonTerminal(t *testing.T) {
	for _, qt := range []uint16{dns.TypeSRV, dns.TypeA} {
		name := "_tcp.web." + zone
		m := s.ask(t, "udp", name, qt, edns)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 || !hasSOA(m, zone) {
			t.Errorf("%s %s (an empty non-terminal) through %s: %s; want NOERROR, no answer, SOA", name, dns.TypeToString[qt], s.r.name, describe(m))
		}
	}
	name := "_http._tcp.web." + zone
	m := s.ask(t, "udp", name, dns.TypeSRV, edns)
	if n := len(ofType(m.Answer, dns.TypeSRV)); m.Rcode != dns.RcodeSuccess || n != len(webHosts) {
		t.Errorf("%s SRV after _tcp.web through %s: %s; want %d SRV", name, s.r.name, describe(m), len(webHosts))
	}
}

// service: web's A and AAAA are every instance's public address (the
// resolver's own address is on no overlay).
func (s *suite) service(t *testing.T) {
	name := "web." + zone
	for _, v6 := range []bool{false, true} {
		qt := dns.TypeA
		if v6 {
			qt = dns.TypeAAAA
		}
		m := s.ask(t, "udp", name, qt, edns)
		if got, want := sorted(m.Answer, name), webAddrs(nil, v6); m.Rcode != dns.RcodeSuccess || !slices.Equal(got, want) {
			t.Errorf("%s %s through %s: %s; want %v", name, dns.TypeToString[qt], s.r.name, describe(m), want)
		}
	}
}

func (s *suite) instance(t *testing.T) {
	name := "h2.web." + zone
	for _, v6 := range []bool{false, true} {
		qt := dns.TypeA
		if v6 {
			qt = dns.TypeAAAA
		}
		m := s.ask(t, "udp", name, qt, edns)
		if got, want := sorted(m.Answer, name), webAddrs(nil, v6, "h2"); m.Rcode != dns.RcodeSuccess || !slices.Equal(got, want) {
			t.Errorf("%s %s through %s: %s; want %v", name, dns.TypeToString[qt], s.r.name, describe(m), want)
		}
	}
}

// srv: web's SRV names one target per instance, and each target resolves
// through the same resolver to that instance's address.
func (s *suite) srv(t *testing.T) {
	for _, name := range []string{"web." + zone, "_http._tcp.web." + zone} {
		m := s.ask(t, "udp", name, dns.TypeSRV, edns)
		var targets []string
		for _, rr := range ofType(m.Answer, dns.TypeSRV) {
			srv := rr.(*dns.SRV)
			if srv.Port != webPort {
				t.Errorf("%s: SRV port %d, want %d", name, srv.Port, webPort)
			}
			targets = append(targets, strings.ToLower(srv.Target))
		}
		sort.Strings(targets)
		var want []string
		for _, h := range webHosts {
			want = append(want, h.name+".web."+zone)
		}
		if m.Rcode != dns.RcodeSuccess || !slices.Equal(targets, want) {
			t.Fatalf("%s SRV through %s: %s; want targets %v", name, s.r.name, describe(m), want)
		}
	}
	for _, h := range webHosts {
		target := h.name + ".web." + zone
		m := s.ask(t, "udp", target, dns.TypeA, edns)
		if got, want := sorted(m.Answer, target), webAddrs(nil, false, h.name); m.Rcode != dns.RcodeSuccess || !slices.Equal(got, want) {
			t.Errorf("SRV target %s A through %s: %s; want %v", target, s.r.name, describe(m), want)
		}
	}
}

// masterA: web-master answers the master's address itself, with no CNAME
// (a CNAME beside the TXT at the same name is not valid DNS, and caches
// then follow the CNAME for every type).
func (s *suite) masterA(t *testing.T) {
	name := "web-master." + zone
	m := s.ask(t, "udp", name, dns.TypeA, edns)
	if c := ofType(m.Answer, dns.TypeCNAME); len(c) > 0 {
		t.Errorf("%s A through %s: %s; want no CNAME at the master name (the A record itself)", name, s.r.name, describe(m))
	}
	if got, want := sorted(m.Answer, name), webAddrs(nil, false, webMaster); m.Rcode != dns.RcodeSuccess || !slices.Equal(got, want) {
		t.Errorf("%s A through %s: %s; want A %v owned by %s", name, s.r.name, describe(m), want, name)
	}
}

// masterTXT asks the master's TXT right after its A, with the resolver's
// cache warm: the regression of the CNAME at that name, where a cache
// answered TXT by chasing the cached CNAME to a name without TXT (NODATA,
// Go's "no such host").
func (s *suite) masterTXT(t *testing.T) {
	name := "web-master." + zone
	m := s.ask(t, "udp", name, dns.TypeTXT, edns)
	want := []string{"host=" + webMaster, fmt.Sprintf("term=%d", s.term)}
	txt := ofType(m.Answer, dns.TypeTXT)
	if m.Rcode != dns.RcodeSuccess || len(txt) != 1 || !strings.EqualFold(txt[0].Header().Name, name) || !slices.Equal(txt[0].(*dns.TXT).Txt, want) || len(ofType(m.Answer, dns.TypeCNAME)) > 0 {
		t.Errorf("%s TXT after A through %s: %s; want one TXT %q at %s and no CNAME", name, s.r.name, describe(m), want, name)
	}
}

// masterOther: the master's AAAA and SRV at the master name, the SRV's
// target resolving to the master.
func (s *suite) masterOther(t *testing.T) {
	name := "web-master." + zone
	m := s.ask(t, "udp", name, dns.TypeAAAA, edns)
	if got, want := sorted(m.Answer, name), webAddrs(nil, true, webMaster); m.Rcode != dns.RcodeSuccess || !slices.Equal(got, want) || len(ofType(m.Answer, dns.TypeCNAME)) > 0 {
		t.Errorf("%s AAAA through %s: %s; want AAAA %v owned by %s, no CNAME", name, s.r.name, describe(m), want, name)
	}
	m = s.ask(t, "udp", name, dns.TypeSRV, edns)
	srvs := ofType(m.Answer, dns.TypeSRV)
	if m.Rcode != dns.RcodeSuccess || len(srvs) != 1 || !strings.EqualFold(srvs[0].Header().Name, name) || srvs[0].(*dns.SRV).Port != webPort || len(ofType(m.Answer, dns.TypeCNAME)) > 0 {
		t.Fatalf("%s SRV through %s: %s; want one SRV port %d owned by %s, no CNAME", name, s.r.name, describe(m), webPort, name)
	}
	target := srvs[0].(*dns.SRV).Target
	a := s.ask(t, "udp", target, dns.TypeA, edns)
	if got, want := sorted(a.Answer, ""), webAddrs(nil, false, webMaster); !slices.Equal(got, want) {
		t.Errorf("master SRV target %s A through %s: %s; want %v", target, s.r.name, describe(a), want)
	}
}

func (s *suite) nxdomain(t *testing.T) {
	for _, name := range []string{"nosuch." + zone, "nosuch.web." + zone, "x.h1.web." + zone} {
		m := s.ask(t, "udp", name, dns.TypeA, edns)
		if m.Rcode != dns.RcodeNameError || len(m.Answer) != 0 || !hasSOA(m, zone) {
			t.Errorf("%s A through %s: %s; want NXDOMAIN with the SOA", name, s.r.name, describe(m))
		}
	}
}

func (s *suite) nodata(t *testing.T) {
	for _, q := range []struct {
		name string
		qt   uint16
	}{{"web." + zone, dns.TypeTXT}, {"web." + zone, dns.TypeMX}, {"web-master." + zone, dns.TypeMX}} {
		m := s.ask(t, "udp", q.name, q.qt, edns)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 || !hasSOA(m, zone) {
			t.Errorf("%s %s through %s: %s; want NOERROR, no answer, SOA (NODATA)", q.name, dns.TypeToString[q.qt], s.r.name, describe(m))
		}
	}
}

// truncation: wide's answer exceeds 512 bytes and 1232 (the resolver's own
// EDNS0 size towards CoreDNS, so it must retry over TCP itself). Over UDP
// the client must get NOERROR with TC set (unbound and dnsmasq send no
// records then, BIND as many as fit); over TCP the whole set.
func (s *suite) truncation(t *testing.T) {
	name := "wide." + zone
	all := bulkAddrs(wideN)
	for _, o := range []struct {
		what string
		opts []func(*dns.Msg)
	}{{"512-byte UDP", nil}, {"1232-byte EDNS0 UDP", []func(*dns.Msg){edns}}} {
		m := s.ask(t, "udp", name, dns.TypeA, o.opts...)
		got := sorted(m.Answer, name)
		if m.Rcode != dns.RcodeSuccess || !m.Truncated || slices.ContainsFunc(got, func(a string) bool { return !slices.Contains(all, a) }) {
			t.Errorf("%s A over %s through %s: %s; want NOERROR with TC and only wide's addresses", name, o.what, s.r.name, describe(m))
		}
	}
	m := s.ask(t, "tcp", name, dns.TypeA, edns)
	if got := sorted(m.Answer, name); m.Rcode != dns.RcodeSuccess || m.Truncated || !slices.Equal(got, all) {
		t.Errorf("%s A over TCP through %s: %s (%d addresses); want all %d", name, s.r.name, describe(m), len(got), wideN)
	}
}

// goResolver: what a Go program gets through the resolver.
func (s *suite) goResolver(t *testing.T) {
	res := goResolver(s.r.addr, "")
	ctx := lookupCtx(t)
	hostAddrs := func(hosts ...string) []string {
		return append(webAddrs(nil, false, hosts...), webAddrs(nil, true, hosts...)...)
	}
	lookupHost := func(name string, want []string) {
		t.Helper()
		got, err := res.LookupHost(ctx, name)
		sort.Strings(got)
		sort.Strings(want)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Go LookupHost(%s) through %s: %v, %v; want %v", name, s.r.name, got, err, want)
		}
	}
	lookupHost("web."+zone, hostAddrs())
	lookupHost("h2.web."+zone, hostAddrs("h2"))
	for _, q := range [][2]string{{"", ""}, {"http", "tcp"}} {
		_, srvs, err := res.LookupSRV(ctx, q[0], q[1], "web."+zone)
		if err != nil || len(srvs) != len(webHosts) {
			t.Errorf("Go LookupSRV(%q, %q, web) through %s: %d records, %v; want %d", q[0], q[1], s.r.name, len(srvs), err, len(webHosts))
			continue
		}
		for _, srv := range srvs {
			host, _, _ := strings.Cut(srv.Target, ".")
			lookupHost(srv.Target, hostAddrs(host))
		}
	}
	// The regression of point 2: A, then TXT at the master name.
	lookupHost("web-master."+zone, hostAddrs(webMaster))
	txt, err := res.LookupTXT(ctx, "web-master."+zone)
	// Go joins the strings of one TXT record.
	want := fmt.Sprintf("host=%sterm=%d", webMaster, s.term)
	if err != nil || len(txt) != 1 || txt[0] != want {
		t.Errorf("Go LookupTXT(web-master) after LookupHost through %s: %q, %v; want [%q]", s.r.name, txt, err, want)
	}
	if got, err := res.LookupHost(ctx, "nosuch."+zone); !isNotFound(err) {
		t.Errorf("Go LookupHost(nosuch) through %s: %v, %v; want not found", s.r.name, got, err)
	}
	if got, err := res.LookupTXT(ctx, "web."+zone); !isNotFound(err) {
		t.Errorf("Go LookupTXT(web) through %s: %v, %v; want not found (NODATA)", s.r.name, got, err)
	}
	// An instance name's TXT is its health state (docs/DESIGN.md, "Health").
	if got, err := res.LookupTXT(ctx, "h2.web."+zone); err != nil || len(got) != 1 || got[0] != "state=passing" {
		t.Errorf("Go LookupTXT(h2.web) through %s: %q, %v; want [\"state=passing\"]", s.r.name, got, err)
	}
	// Go retries over TCP on TC.
	lookupHost("wide."+zone, bulkAddrs(wideN))
}

// glibc: what a C program (getaddrinfo) gets through the resolver.
func (s *suite) glibc(t *testing.T) {
	g := newGlibc(t, s.r)
	for _, q := range []struct {
		name string
		want []string
	}{
		{"web." + zone, webAddrs(nil, false)},
		{"h2.web." + zone, webAddrs(nil, false, "h2")},
		{"web-master." + zone, webAddrs(nil, false, webMaster)},
		{"wide." + zone, bulkAddrs(wideN)}, // glibc asks without EDNS0: TC, then TCP
	} {
		got, code := g.ahostsV4(t, q.name)
		if code != 0 || !slices.Equal(got, q.want) {
			t.Errorf("getent ahostsv4 %s through %s: exit %d, %v; want %v", q.name, s.r.name, code, got, q.want)
		}
	}
	// getent exits 2 for a name that is not found.
	if got, code := g.ahostsV4(t, "nosuch."+zone); code != 2 {
		t.Errorf("getent ahostsv4 nosuch through %s: exit %d, %v; want exit 2 (not found)", s.r.name, code, got)
	}
}
