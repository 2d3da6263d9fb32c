package rollcall

// The registry fixture and the table of DNS cases shared by the handler-level
// tests (this package) and the end-to-end tests against etcd and CoreDNS
// (package rollcall_test, via the exported names). Both run every case.

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FixtureKV is one etcd key and value of the fixture.
type FixtureKV struct {
	Key, Value string
}

// FixtureKVs returns the fixture: good records for several services, hosts,
// networks and elections, and malformed keys and values that must be skipped
// without disturbing the rest.
func FixtureKVs() []FixtureKV {
	host := func(name, addrs string) FixtureKV {
		return FixtureKV{"/rollcall/hosts/" + name + "/host", `{"name":"` + name + `","addrs":` + addrs + `}`}
	}
	inst := func(h, svc, extra string) FixtureKV {
		return FixtureKV{"/rollcall/hosts/" + h + "/services/" + svc, `{"service":"` + svc + `","host":"` + h + `"` + extra + `}`}
	}
	kvs := []FixtureKV{
		host("h1", `{"public":["192.0.2.1","2001:db8::1"],"vpn0":["10.100.0.1"],"vpn1":["10.200.0.1","fd00::1"]}`),
		host("h2", `{"public":["192.0.2.2"],"vpn0":["10.100.0.2"]}`),
		host("h3", `{"public":["192.0.2.3"]}`),
		host("h4", `{"public":["192.0.2.4"],"vpn1":["10.200.0.4"]}`),
		host("x1", `{"public":["192.0.2.21"]}`),
		host("x2", `{"public":["192.0.2.22"]}`),
		inst("h1", "web", `,"shard":"s1","ports":[{"name":"http","port":8080,"proto":"tcp"}]`),
		inst("h2", "web", `,"shard":"s2","ports":[{"name":"http","port":8080,"proto":"tcp"},{"name":"metrics","port":9100,"proto":"tcp"}]`),
		inst("h3", "web", ``),
		inst("h4", "web", `,"shard":"s1"`),
		inst("h1", "db", `,"addrs":{"public":["198.51.100.1"]},"ports":[{"name":"pg","port":5432,"proto":"tcp"}]`),
		inst("h2", "db-master", ``),
		inst("x1", "api", `,"shard":"x2"`),
		inst("x2", "api", ``),
		inst("h3", "cache", ``),
		inst("h1", "lone", ``),
		// Elections: web has two candidates and the first written (lowest
		// create revision) leads; lone's leader has no instance of lone.
		{"/rollcall/elections/web/1", "h2"},
		{"/rollcall/elections/web/2", "h1"},
		{"/rollcall/elections/db/3", "h1"},
		{"/rollcall/elections/lone/4", "h3"},
		// Health (docs/DESIGN.md, "Health"). st has one instance in each
		// state; down has critical ones and a draining one, so it fails
		// open; drained has only draining ones. p1-p3 hold maintenance:
		// p1's instance of maint, the whole of p2, and on p3 only
		// expired or malformed records.
		host("p1", `{"public":["192.0.2.31"]}`),
		host("p2", `{"public":["192.0.2.32"]}`),
		host("p3", `{"public":["192.0.2.33"]}`),
		inst("h1", "st", `,"state":"passing","since":1700000000,"shard":"a","ports":[{"name":"http","port":80,"proto":"tcp"}]`),
		inst("h2", "st", `,"state":"warning","since":1700000001,"shard":"a","ports":[{"name":"http","port":80,"proto":"tcp"}]`),
		inst("h3", "st", `,"state":"critical","since":1700000002,"reason":"check http: connection refused","shard":"b","ports":[{"name":"http","port":80,"proto":"tcp"}]`),
		inst("h4", "st", `,"state":"draining","since":1700000003,"shard":"c","ports":[{"name":"http","port":80,"proto":"tcp"}]`),
		inst("x1", "down", `,"state":"critical","reason":"disk full"`),
		inst("x2", "down", `,"state":"critical","ports":[{"name":"http","port":80,"proto":"tcp"}]`),
		inst("h4", "down", `,"state":"draining","ports":[{"name":"http","port":80,"proto":"tcp"}]`),
		inst("h1", "drained", `,"state":"draining","ports":[{"name":"http","port":80,"proto":"tcp"}]`),
		inst("h2", "drained", `,"state":"draining"`),
		inst("p1", "maint", ``),
		inst("p2", "maint", `,"state":"passing"`),
		inst("p3", "maint", ``),
		inst("p2", "hold", `,"state":"critical"`),
		inst("p3", "hold", `,"state":"critical"`),
		{"/rollcall/maintenance/p1/maint", `{"reason":"disk swap","who":"ops@admin1"}`},
		{"/rollcall/maintenance/p2", `{"reason":"kernel upgrade","who":"ops@admin1","until":4102444800}`},
		{"/rollcall/maintenance/p3/maint", `{"reason":"done long ago","until":1000}`},
		// The master follows the election whatever its instance's state:
		// an agent whose instance leaves service resigns.
		{"/rollcall/elections/st/6", "h3"},

		// Malformed data, every piece skipped and counted.
		{"/rollcall/hosts/h5/host", "not json"},
		{"/rollcall/hosts/h5/services/web", `{"service":"web","host":"h9"}`},
		inst("h6", "web", `,"addrs":{"public":["300.1.1.1"]}`),
		inst("h7", "web", `,"ports":"x"`),
		inst("h8", "web", `,"addrs":{"public":["10.1.1.1%eth0"]}`),
		inst("h10", "web", `,"shard":"Bad_Shard"`),
		{"/rollcall/hosts/H8/host", `{"name":"H8","addrs":{}}`},
		{"/rollcall/hosts/h1/extra/deep", `{}`},
		{"/rollcall/hosts/h1", `{}`},
		{"/rollcall/elections/web/zz", "h3"},
		{"/rollcall/elections/cache/5", "Not A Host"},
		{"/rollcall/hosts/h9/services/web", `{"service":"web","host":"h9","pad":"` + strings.Repeat("x", 70000) + `"}`},
		inst("p1", "sick", `,"state":"sick"`),
		inst("p1", "st", `,"state":"passing","reason":"only critical carries one"`),
		// Garbage maintenance takes nothing out of service.
		{"/rollcall/maintenance/p3", `{"who":"ops@admin1"}`},
		{"/rollcall/maintenance/p3/hold", "not json"},
		{"/rollcall/maintenance/P3", `{"reason":"bad key"}`},
	}
	for i := 0; i < 60; i++ {
		kvs = append(kvs, inst(fmt.Sprintf("m%02d", i), "many", fmt.Sprintf(`,"addrs":{"public":["192.0.3.%d"]}`, i+1)))
	}
	return kvs
}

// Blocks are the rollcall blocks the cases run against, by zone: views by
// client address (with 127.0.0.0/8 ranges posing as overlays), `local`,
// `ecs`, and none. Endpoints are added by the caller.
var Blocks = []struct{ Zone, Body string }{
	{"infra.example.com.", "ttl 7\nnetwork vpn0 127.0.1.0/24 10.100.0.0/16\nnetwork vpn1 127.0.2.0/24 127.0.1.128/25 ::1/128 10.200.0.0/16"},
	{"local.example.com.", "local h1\nnetwork vpn0 10.100.0.0/16\nnetwork vpn1 10.200.0.0/16"},
	{"ecs.example.com.", "ecs\nnetwork vpn0 10.100.0.0/16\nnetwork vpn1 10.200.0.0/16"},
	{"plain.example.com.", ""},
	{"closed.example.com.", "fail_open off"},
}

// Case is one query and the response it must get. Records are written
// "owner TYPE rdata" with owners relative to the case's zone (Z); "{term:x}"
// stands for the term of x's master.
type Case struct {
	Name   string
	QName  string // relative to Zone, "" for the apex
	Zone   string
	QType  uint16
	From   string // client source address
	ECS    string // EDNS Client Subnet prefix, "10.200.7.0/24"
	Rcode  int
	Answer []string
	Extra  []string
	NoSOA  bool // no SOA expected in authority (answers)
}

const zInfra = "infra.example.com."

func infra(name string, qtype uint16, from string, rcode int, answer []string, extra ...string) Case {
	return Case{QName: name, Zone: zInfra, QType: qtype, From: from, Rcode: rcode, Answer: answer, Extra: extra}
}

const (
	fromPublic = "127.0.0.1"
	fromVPN0   = "127.0.1.5"
	fromVPN1   = "127.0.2.5"
	fromBoth   = "127.0.1.200"
	fromV6     = "::1" // in vpn1
)

var (
	nx = dns.RcodeNameError
	ok = dns.RcodeSuccess
)

func named(name string, c Case) Case { c.Name = name; return c }

// Cases is every name kind, record type, view and edge of docs/DESIGN.md
// ("Names and DNS rules", "Views").
var Cases = []Case{
	named("apex SOA", infra("", dns.TypeSOA, fromPublic, ok, []string{"Z SOA"})),
	named("apex NS", infra("", dns.TypeNS, fromPublic, ok, []string{"Z NS ns.dns.Z"})),
	named("apex A is NODATA", infra("", dns.TypeA, fromPublic, ok, nil)),

	named("service A public", infra("web", dns.TypeA, fromPublic, ok, []string{"web A 192.0.2.1", "web A 192.0.2.2", "web A 192.0.2.3", "web A 192.0.2.4"})),
	named("service A vpn0", infra("web", dns.TypeA, fromVPN0, ok, []string{"web A 10.100.0.1", "web A 10.100.0.2", "web A 192.0.2.3", "web A 192.0.2.4"})),
	named("service A vpn1", infra("web", dns.TypeA, fromVPN1, ok, []string{"web A 10.200.0.1", "web A 192.0.2.2", "web A 192.0.2.3", "web A 10.200.0.4"})),
	named("service A on both: Corefile order", infra("web", dns.TypeA, fromBoth, ok, []string{"web A 10.100.0.1", "web A 10.100.0.2", "web A 192.0.2.3", "web A 10.200.0.4"})),
	named("service A from ::1 (vpn1)", infra("web", dns.TypeA, fromV6, ok, []string{"web A 10.200.0.1", "web A 192.0.2.2", "web A 192.0.2.3", "web A 10.200.0.4"})),
	named("service AAAA public", infra("web", dns.TypeAAAA, fromPublic, ok, []string{"web AAAA 2001:db8::1"})),
	named("service AAAA vpn1", infra("web", dns.TypeAAAA, fromVPN1, ok, []string{"web AAAA fd00::1"})),
	named("service AAAA from ::1", infra("web", dns.TypeAAAA, fromV6, ok, []string{"web AAAA fd00::1"})),
	named("service AAAA vpn0: network picked has none: NODATA", infra("web", dns.TypeAAAA, fromVPN0, ok, nil)),
	named("service case-insensitive", infra("WeB", dns.TypeA, fromPublic, ok, []string{"web A 192.0.2.1", "web A 192.0.2.2", "web A 192.0.2.3", "web A 192.0.2.4"})),
	named("service SRV public", infra("web", dns.TypeSRV, fromPublic, ok,
		[]string{"web SRV 10 10 8080 h1.web.Z", "web SRV 10 10 8080 h2.web.Z", "web SRV 10 10 9100 h2.web.Z"},
		"h1.web A 192.0.2.1", "h1.web AAAA 2001:db8::1", "h2.web A 192.0.2.2")),
	named("service SRV vpn0", infra("web", dns.TypeSRV, fromVPN0, ok,
		[]string{"web SRV 10 10 8080 h1.web.Z", "web SRV 10 10 8080 h2.web.Z", "web SRV 10 10 9100 h2.web.Z"},
		"h1.web A 10.100.0.1", "h2.web A 10.100.0.2")),
	named("service TXT is NODATA", infra("web", dns.TypeTXT, fromPublic, ok, nil)),
	named("service addrs override host", infra("db", dns.TypeA, fromVPN0, ok, []string{"db A 198.51.100.1"})),

	named("port SRV", infra("_http._tcp.web", dns.TypeSRV, fromPublic, ok,
		[]string{"_http._tcp.web SRV 10 10 8080 h1.web.Z", "_http._tcp.web SRV 10 10 8080 h2.web.Z"},
		"h1.web A 192.0.2.1", "h1.web AAAA 2001:db8::1", "h2.web A 192.0.2.2")),
	named("port SRV vpn1", infra("_metrics._tcp.web", dns.TypeSRV, fromVPN1, ok,
		[]string{"_metrics._tcp.web SRV 10 10 9100 h2.web.Z"}, "h2.web A 192.0.2.2")),
	named("port of other proto", infra("_http._udp.web", dns.TypeSRV, fromPublic, nx, nil)),
	named("port A is NODATA", infra("_http._tcp.web", dns.TypeA, fromPublic, ok, nil)),
	named("proto with ports below: empty non-terminal, NODATA", infra("_tcp.web", dns.TypeA, fromPublic, ok, nil)),
	named("proto SRV: empty non-terminal, NODATA", infra("_TCP.web", dns.TypeSRV, fromPublic, ok, nil)),
	named("proto with no ports below: NXDOMAIN", infra("_udp.web", dns.TypeA, fromPublic, nx, nil)),
	named("proto of a service without ports: NXDOMAIN", infra("_tcp.cache", dns.TypeA, fromPublic, nx, nil)),
	named("port of unknown service", infra("_http._tcp.nosuch", dns.TypeSRV, fromPublic, nx, nil)),

	named("instance A public", infra("h1.web", dns.TypeA, fromPublic, ok, []string{"h1.web A 192.0.2.1"})),
	named("instance A vpn0", infra("h1.web", dns.TypeA, fromVPN0, ok, []string{"h1.web A 10.100.0.1"})),
	named("instance AAAA vpn1", infra("h1.web", dns.TypeAAAA, fromVPN1, ok, []string{"h1.web AAAA fd00::1"})),
	named("instance SRV", infra("h1.web", dns.TypeSRV, fromPublic, ok, []string{"h1.web SRV 10 10 8080 h1.web.Z"}, "h1.web A 192.0.2.1", "h1.web AAAA 2001:db8::1")),
	named("instance without ports: SRV NODATA", infra("h3.web", dns.TypeSRV, fromPublic, ok, nil)),
	named("instance TXT: its state, passing without one", infra("h3.web", dns.TypeTXT, fromPublic, ok, []string{`h3.web TXT "state=passing"`})),
	named("instance CNAME NODATA", infra("h3.web", dns.TypeCNAME, fromPublic, ok, nil)),
	named("instance override vpn0", infra("h1.db", dns.TypeA, fromVPN0, ok, []string{"h1.db A 198.51.100.1"})),
	named("below an instance", infra("x.h1.web", dns.TypeA, fromPublic, nx, nil)),
	named("host of another service", infra("h3.db", dns.TypeA, fromPublic, nx, nil)),

	named("shard A vpn0", infra("s2.web", dns.TypeA, fromVPN0, ok, []string{"s2.web A 10.100.0.2"})),
	named("shard of two instances", infra("s1.web", dns.TypeA, fromPublic, ok, []string{"s1.web A 192.0.2.1", "s1.web A 192.0.2.4"})),
	named("shard SRV NODATA", infra("s2.web", dns.TypeSRV, fromPublic, ok, nil)),
	named("unknown shard", infra("s3.web", dns.TypeA, fromPublic, nx, nil)),
	named("host wins over shard", infra("x2.api", dns.TypeA, fromPublic, ok, []string{"x2.api A 192.0.2.22"})),

	named("master A", infra("web-master", dns.TypeA, fromPublic, ok, []string{"web-master A 192.0.2.2"})),
	named("master A vpn0", infra("web-master", dns.TypeA, fromVPN0, ok, []string{"web-master A 10.100.0.2"})),
	named("master AAAA: none, NODATA", infra("web-master", dns.TypeAAAA, fromPublic, ok, nil)),
	named("master TXT", infra("web-master", dns.TypeTXT, fromPublic, ok, []string{`web-master TXT "host=h2" "term={term:web}"`})),
	named("master has no CNAME", infra("web-master", dns.TypeCNAME, fromPublic, ok, nil)),
	named("master SRV", infra("web-master", dns.TypeSRV, fromPublic, ok,
		[]string{"web-master SRV 10 10 8080 h2.web.Z", "web-master SRV 10 10 9100 h2.web.Z"}, "h2.web A 192.0.2.2")),
	named("master A vpn1: master not on it, public", infra("web-master", dns.TypeA, fromVPN1, ok, []string{"web-master A 192.0.2.2"})),
	named("service named x-master wins over master of x", infra("db-master", dns.TypeA, fromPublic, ok, []string{"db-master A 192.0.2.2"})),
	named("no election: NXDOMAIN", infra("cache-master", dns.TypeA, fromPublic, nx, nil)),
	named("leader without instance: NXDOMAIN", infra("lone-master", dns.TypeA, fromPublic, nx, nil)),
	named("master of unknown service", infra("nosuch-master", dns.TypeA, fromPublic, nx, nil)),
	named("below master", infra("x.web-master", dns.TypeA, fromPublic, nx, nil)),

	named("ANY service: its A records (RFC 8482)", infra("web", dns.TypeANY, fromPublic, ok, []string{"web A 192.0.2.1", "web A 192.0.2.2", "web A 192.0.2.3", "web A 192.0.2.4"})),
	named("ANY service vpn1", infra("web", dns.TypeANY, fromVPN1, ok, []string{"web A 10.200.0.1", "web A 192.0.2.2", "web A 192.0.2.3", "web A 10.200.0.4"})),
	named("ANY instance", infra("h1.web", dns.TypeANY, fromPublic, ok, []string{"h1.web A 192.0.2.1"})),
	named("ANY shard", infra("s2.web", dns.TypeANY, fromVPN0, ok, []string{"s2.web A 10.100.0.2"})),
	named("ANY port: its SRV", infra("_http._tcp.web", dns.TypeANY, fromPublic, ok,
		[]string{"_http._tcp.web SRV 10 10 8080 h1.web.Z", "_http._tcp.web SRV 10 10 8080 h2.web.Z"},
		"h1.web A 192.0.2.1", "h1.web AAAA 2001:db8::1", "h2.web A 192.0.2.2")),
	named("ANY master", infra("web-master", dns.TypeANY, fromPublic, ok, []string{"web-master A 192.0.2.2"})),
	named("ANY apex: its SOA", infra("", dns.TypeANY, fromPublic, ok, []string{"Z SOA"})),
	named("ANY empty non-terminal: NODATA", infra("_tcp.web", dns.TypeANY, fromPublic, ok, nil)),
	named("ANY unknown: NXDOMAIN", infra("nosuch", dns.TypeANY, fromPublic, nx, nil)),

	named("unknown name", infra("nosuch", dns.TypeA, fromPublic, nx, nil)),
	named("too deep", infra("a.b.c.d", dns.TypeA, fromPublic, nx, nil)),
	named("bad host record skipped", infra("h5.web", dns.TypeA, fromPublic, nx, nil)),
	named("invalid IP skipped", infra("h6.web", dns.TypeA, fromPublic, nx, nil)),
	named("wrong types skipped", infra("h7.web", dns.TypeA, fromPublic, nx, nil)),
	named("zoned IP skipped", infra("h8.web", dns.TypeA, fromPublic, nx, nil)),
	named("huge value skipped", infra("h9.web", dns.TypeA, fromPublic, nx, nil)),
	named("bad shard skipped", infra("h10.web", dns.TypeA, fromPublic, nx, nil)),

	// Health: service names serve passing and warning instances, SRV
	// weight 10 and 1; every instance name answers in every state.
	named("health: service A serves passing and warning", infra("st", dns.TypeA, fromPublic, ok, []string{"st A 192.0.2.1", "st A 192.0.2.2"})),
	named("health: service A vpn0", infra("st", dns.TypeA, fromVPN0, ok, []string{"st A 10.100.0.1", "st A 10.100.0.2"})),
	named("health: service A on both networks (slow walk)", infra("st", dns.TypeA, fromBoth, ok, []string{"st A 10.100.0.1", "st A 10.100.0.2"})),
	named("health: service AAAA", infra("st", dns.TypeAAAA, fromPublic, ok, []string{"st AAAA 2001:db8::1"})),
	named("health: service SRV weights", infra("st", dns.TypeSRV, fromPublic, ok,
		[]string{"st SRV 10 10 80 h1.st.Z", "st SRV 10 1 80 h2.st.Z"},
		"h1.st A 192.0.2.1", "h1.st AAAA 2001:db8::1", "h2.st A 192.0.2.2")),
	named("health: port SRV weights", infra("_http._tcp.st", dns.TypeSRV, fromPublic, ok,
		[]string{"_http._tcp.st SRV 10 10 80 h1.st.Z", "_http._tcp.st SRV 10 1 80 h2.st.Z"},
		"h1.st A 192.0.2.1", "h1.st AAAA 2001:db8::1", "h2.st A 192.0.2.2")),
	named("health: shard of passing and warning", infra("a.st", dns.TypeA, fromPublic, ok, []string{"a.st A 192.0.2.1", "a.st A 192.0.2.2"})),
	named("health: shard of a critical instance only: NXDOMAIN", infra("b.st", dns.TypeA, fromPublic, nx, nil)),
	named("health: shard of a draining instance only: NXDOMAIN", infra("c.st", dns.TypeA, fromPublic, nx, nil)),
	named("health: passing instance TXT", infra("h1.st", dns.TypeTXT, fromPublic, ok, []string{`h1.st TXT "state=passing"`})),
	named("health: warning instance TXT", infra("h2.st", dns.TypeTXT, fromPublic, ok, []string{`h2.st TXT "state=warning"`})),
	named("health: warning instance SRV weight 1", infra("h2.st", dns.TypeSRV, fromPublic, ok, []string{"h2.st SRV 10 1 80 h2.st.Z"}, "h2.st A 192.0.2.2")),
	named("health: critical instance TXT", infra("h3.st", dns.TypeTXT, fromPublic, ok, []string{`h3.st TXT "state=critical"`})),
	named("health: critical instance still answers A", infra("h3.st", dns.TypeA, fromPublic, ok, []string{"h3.st A 192.0.2.3"})),
	named("health: draining instance TXT", infra("h4.st", dns.TypeTXT, fromPublic, ok, []string{`h4.st TXT "state=draining"`})),
	named("health: draining instance still answers A", infra("h4.st", dns.TypeA, fromPublic, ok, []string{"h4.st A 192.0.2.4"})),
	named("health: ANY critical instance: its A", infra("h3.st", dns.TypeANY, fromPublic, ok, []string{"h3.st A 192.0.2.3"})),
	named("health: master follows the election, not the state", infra("st-master", dns.TypeA, fromPublic, ok, []string{"st-master A 192.0.2.3"})),
	named("health: record with a bad state skipped", infra("sick", dns.TypeA, fromPublic, nx, nil)),
	named("health: record with a bad reason skipped", infra("p1.st", dns.TypeA, fromPublic, nx, nil)),

	// Fail open: no instance passing or warning, so the critical ones,
	// never the draining one.
	named("fail open: critical instances served", infra("down", dns.TypeA, fromPublic, ok, []string{"down A 192.0.2.21", "down A 192.0.2.22"})),
	named("fail open: SRV", infra("down", dns.TypeSRV, fromPublic, ok, []string{"down SRV 10 10 80 x2.down.Z"}, "x2.down A 192.0.2.22")),
	named("fail open: port SRV", infra("_http._tcp.down", dns.TypeSRV, fromPublic, ok, []string{"_http._tcp.down SRV 10 10 80 x2.down.Z"}, "x2.down A 192.0.2.22")),
	named("fail open: instance TXT", infra("x1.down", dns.TypeTXT, fromPublic, ok, []string{`x1.down TXT "state=critical"`})),
	{Name: "fail open off: no instance, the service is an empty non-terminal: NODATA", QName: "down", Zone: "closed.example.com.", QType: dns.TypeA, From: fromPublic, Rcode: ok},
	{Name: "fail open off: SRV NODATA", QName: "down", Zone: "closed.example.com.", QType: dns.TypeSRV, From: fromPublic, Rcode: ok},
	{Name: "fail open off: port of no instance served: NXDOMAIN", QName: "_http._tcp.down", Zone: "closed.example.com.", QType: dns.TypeSRV, From: fromPublic, Rcode: nx},
	{Name: "fail open off: proto of no instance served: NXDOMAIN", QName: "_tcp.down", Zone: "closed.example.com.", QType: dns.TypeSRV, From: fromPublic, Rcode: nx},
	{Name: "fail open off: instance still answers", QName: "x1.down", Zone: "closed.example.com.", QType: dns.TypeA, From: fromPublic, Rcode: ok,
		Answer: []string{"x1.down A 192.0.2.21"}},
	{Name: "fail open off: passing and warning as usual", QName: "st", Zone: "closed.example.com.", QType: dns.TypeA, From: fromPublic, Rcode: ok,
		Answer: []string{"st A 192.0.2.1", "st A 192.0.2.2"}},
	named("every instance draining: NODATA, not fail open", infra("drained", dns.TypeA, fromPublic, ok, nil)),
	named("every instance draining: SRV NODATA", infra("drained", dns.TypeSRV, fromPublic, ok, nil)),
	named("every instance draining: port NXDOMAIN", infra("_http._tcp.drained", dns.TypeSRV, fromPublic, nx, nil)),
	named("every instance draining: instance answers", infra("h1.drained", dns.TypeA, fromPublic, ok, []string{"h1.drained A 192.0.2.1"})),

	// Maintenance, per instance and host-wide; expired and malformed
	// records count as absent.
	named("maintenance: service leaves out instance and host maintenance", infra("maint", dns.TypeA, fromPublic, ok, []string{"maint A 192.0.2.33"})),
	named("maintenance: instance TXT", infra("p1.maint", dns.TypeTXT, fromPublic, ok, []string{`p1.maint TXT "state=maintenance"`})),
	named("maintenance: host-wide TXT", infra("p2.maint", dns.TypeTXT, fromPublic, ok, []string{`p2.maint TXT "state=maintenance"`})),
	named("maintenance: instance still answers A", infra("p1.maint", dns.TypeA, fromPublic, ok, []string{"p1.maint A 192.0.2.31"})),
	named("maintenance: expired counts as absent", infra("p3.maint", dns.TypeTXT, fromPublic, ok, []string{`p3.maint TXT "state=passing"`})),
	named("maintenance: fail open leaves it out", infra("hold", dns.TypeA, fromPublic, ok, []string{"hold A 192.0.2.33"})),
	named("maintenance: critical in maintenance TXT", infra("p2.hold", dns.TypeTXT, fromPublic, ok, []string{`p2.hold TXT "state=maintenance"`})),
	named("maintenance: malformed record ignored", infra("p3.hold", dns.TypeTXT, fromPublic, ok, []string{`p3.hold TXT "state=critical"`})),

	{Name: "local: loopback gets the host's view", QName: "web", Zone: "local.example.com.", QType: dns.TypeA, From: fromPublic, Rcode: ok,
		Answer: []string{"web A 10.100.0.1", "web A 10.100.0.2", "web A 192.0.2.3", "web A 10.200.0.4"}},
	{Name: "ecs: view from client subnet", QName: "web", Zone: "ecs.example.com.", QType: dns.TypeA, From: fromPublic, ECS: "10.200.7.0/24", Rcode: ok,
		Answer: []string{"web A 10.200.0.1", "web A 192.0.2.2", "web A 192.0.2.3", "web A 10.200.0.4"}},
	{Name: "ecs: subnet the size of the network", QName: "web", Zone: "ecs.example.com.", QType: dns.TypeA, From: fromPublic, ECS: "10.200.0.0/16", Rcode: ok,
		Answer: []string{"web A 10.200.0.1", "web A 192.0.2.2", "web A 192.0.2.3", "web A 10.200.0.4"}},
	{Name: "ecs: subnet wider than the network: public", QName: "web", Zone: "ecs.example.com.", QType: dns.TypeA, From: fromVPN1, ECS: "10.200.0.0/15", Rcode: ok,
		Answer: []string{"web A 192.0.2.1", "web A 192.0.2.2", "web A 192.0.2.3", "web A 192.0.2.4"}},
	{Name: "ecs: /0: public", QName: "web", Zone: "ecs.example.com.", QType: dns.TypeA, From: fromPublic, ECS: "0.0.0.0/0", Rcode: ok,
		Answer: []string{"web A 192.0.2.1", "web A 192.0.2.2", "web A 192.0.2.3", "web A 192.0.2.4"}},
	{Name: "ecs: without the option, source address", QName: "web", Zone: "ecs.example.com.", QType: dns.TypeA, From: fromVPN0, Rcode: ok,
		Answer: []string{"web A 192.0.2.1", "web A 192.0.2.2", "web A 192.0.2.3", "web A 192.0.2.4"}},
	{Name: "no views: public only", QName: "web", Zone: "plain.example.com.", QType: dns.TypeA, From: fromVPN0, Rcode: ok,
		Answer: []string{"web A 192.0.2.1", "web A 192.0.2.2", "web A 192.0.2.3", "web A 192.0.2.4"}},
	{Name: "no views: master", QName: "web-master", Zone: "plain.example.com.", QType: dns.TypeA, From: fromVPN0, Rcode: ok,
		Answer: []string{"web-master A 192.0.2.2"}},
}

// FQDN is the case's query name.
func (c Case) FQDN() string {
	if c.QName == "" {
		return c.Zone
	}
	return c.QName + "." + c.Zone
}

// Msg returns the query message of the case.
func (c Case) Msg() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(c.FQDN(), c.QType)
	if c.ECS != "" {
		m.SetEdns0(1232, false)
		addr, bits := c.ECSPrefix()
		e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: bits}
		e.Address = net.ParseIP(addr).To4()
		m.IsEdns0().Option = append(m.IsEdns0().Option, e)
	}
	return m
}

// ECSPrefix splits the case's ECS prefix (IPv4) into address and length.
func (c Case) ECSPrefix() (string, uint8) {
	addr, bits, _ := strings.Cut(c.ECS, "/")
	n, _ := strconv.Atoi(bits)
	return addr, uint8(n)
}

// rrText writes a record as "owner TYPE rdata" with the zone shortened to Z.
func rrText(rr dns.RR, zone string) string {
	h := rr.Header()
	rdata := strings.TrimPrefix(rr.String(), h.String())
	name := strings.ToLower(h.Name)
	if name == zone {
		name = "Z"
	} else {
		name = strings.TrimSuffix(name, "."+zone)
	}
	s := name + " " + dns.TypeToString[h.Rrtype]
	if h.Rrtype == dns.TypeSOA {
		return s
	}
	rdata = strings.ReplaceAll(strings.TrimSpace(rdata), zone, "Z")
	return s + " " + rdata
}

// CheckCase compares a response with the case. terms maps a service to its
// master's term. ttl is the answer TTL the zone's block has.
func CheckCase(t testing.TB, c Case, m *dns.Msg, terms map[string]int64) {
	t.Helper()
	if m.Rcode != c.Rcode {
		t.Errorf("rcode %s, want %s\n%v", dns.RcodeToString[m.Rcode], dns.RcodeToString[c.Rcode], m)
	}
	if !m.Authoritative {
		t.Errorf("AA not set")
	}
	want := make([]string, len(c.Answer))
	for i, a := range c.Answer {
		for svc, term := range terms {
			a = strings.ReplaceAll(a, "{term:"+svc+"}", strconv.FormatInt(term, 10))
		}
		want[i] = a
	}
	compare(t, "answer", texts(m.Answer, c.Zone), want)
	var extra []dns.RR
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	compare(t, "extra", texts(extra, c.Zone), c.Extra)
	// Every record carries the block's ttl (7 in the infra block, else the
	// default), and so does the SOA's minimum.
	ttl := uint32(defaultTTL)
	if c.Zone == zInfra {
		ttl = 7
	}
	for _, rr := range append(append(append([]dns.RR{}, m.Answer...), m.Ns...), extra...) {
		if rr.Header().Ttl != ttl {
			t.Errorf("%s: ttl %d, want %d", rr, rr.Header().Ttl, ttl)
		}
		if soaRR, isSOA := rr.(*dns.SOA); isSOA && soaRR.Minttl != ttl {
			t.Errorf("SOA minimum %d, want %d", soaRR.Minttl, ttl)
		}
	}
	soa := len(m.Ns) == 1 && m.Ns[0].Header().Rrtype == dns.TypeSOA
	if len(c.Answer) == 0 && !soa {
		t.Errorf("authority %v, want the zone's SOA", m.Ns)
	}
	if len(c.Answer) > 0 && len(m.Ns) != 0 {
		t.Errorf("authority %v, want none with answers", m.Ns)
	}
}

func texts(rrs []dns.RR, zone string) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rrText(rr, zone))
	}
	return out
}

func compare(t testing.TB, what string, got, want []string) {
	t.Helper()
	g := append([]string(nil), got...)
	w := append([]string(nil), want...)
	sort.Strings(g)
	sort.Strings(w)
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("%s:\n got  %q\n want %q", what, g, w)
	}
}
