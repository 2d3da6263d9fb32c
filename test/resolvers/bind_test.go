package resolvers

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestBINDMaxRecordsPerType: BIND 9.18.28 and later refuse to cache more
// than 100 records of one type at a name (max-records-per-type, a defence
// against CVE-2024-1737) and answer SERVFAIL instead, so a service with
// more instances is unreachable through BIND. With `max_answers 100` every
// answer holds at most 100 instances, a random subset per query, and BIND
// answers. huge has 150 instances; it is served twice from one etcd: as
// infra.example.com. without max_answers, and as capped.example.com. with.
func TestBINDMaxRecordsPerType(t *testing.T) {
	t.Parallel()
	bin := need(t, "named", "bind9")
	version, _ := exec.Command(bin, "-v").CombinedOutput()
	t.Logf("BIND: %s", strings.TrimSpace(string(version)))
	e, _ := registryData(t)
	hugeAll := bulkAddrs(hugeN)

	plain := startCoreDNS(t, e, zone, "")
	name := "huge." + zone
	// CoreDNS itself sends all of them over TCP.
	if m := ask(t, plain.addr, "tcp", "", name, dns.TypeA, edns); len(m.Answer) != hugeN {
		t.Fatalf("%s A over TCP from CoreDNS: %s; want %d records", name, describe(m), hugeN)
	}
	named := startNamed(t, map[string]*coreDNS{zone: plain})
	m := ask(t, named.addr, "tcp", "", name, dns.TypeA, edns)
	switch got := sorted(m.Answer, name); {
	case m.Rcode == dns.RcodeServerFailure:
		t.Logf("%s A (%d records) through BIND: SERVFAIL, BIND's max-records-per-type as documented", name, hugeN)
	case m.Rcode == dns.RcodeSuccess && slices.Equal(got, hugeAll):
		t.Logf("%s A (%d records) through BIND: all answered; this BIND does not enforce max-records-per-type 100 (it came in 9.18.28)", name, hugeN)
	default:
		t.Errorf("%s A through BIND: %s; want SERVFAIL (the documented limit) or all %d", name, describe(m), hugeN)
	}

	capped := startCoreDNS(t, e, cappedZone, "max_answers 100")
	name = "huge." + cappedZone
	// Directly: exactly 100 distinct instances of huge over TCP (room for
	// all), a different subset from one query to the next.
	var subsets [][]string
	for i := 0; i < 3; i++ {
		m := ask(t, capped.addr, "tcp", "", name, dns.TypeA, edns)
		got := sorted(m.Answer, name)
		if m.Rcode != dns.RcodeSuccess || len(got) != 100 || len(slices.Compact(slices.Clone(got))) != 100 || !subset(got, hugeAll) {
			t.Fatalf("%s A over TCP from CoreDNS with max_answers 100: %s (%d records); want 100 distinct instances of huge", name, describe(m), len(got))
		}
		subsets = append(subsets, got)
	}
	if slices.Equal(subsets[0], subsets[1]) && slices.Equal(subsets[1], subsets[2]) {
		t.Errorf("%s: three answers held the same 100 of %d instances; want a random subset per query", name, hugeN)
	}
	if m := ask(t, capped.addr, "tcp", "", name, dns.TypeSRV, edns); m.Rcode != dns.RcodeSuccess || len(ofType(m.Answer, dns.TypeSRV)) != 100 {
		t.Errorf("%s SRV over TCP from CoreDNS with max_answers 100: %s (%d SRV); want 100", name, describe(m), len(ofType(m.Answer, dns.TypeSRV)))
	}

	named = startNamed(t, map[string]*coreDNS{cappedZone: capped})
	for _, qt := range []uint16{dns.TypeA, dns.TypeSRV} {
		m := ask(t, named.addr, "tcp", "", name, qt, edns)
		n := len(ofType(m.Answer, qt))
		if m.Rcode != dns.RcodeSuccess || n == 0 || n > 100 || (qt == dns.TypeA && !subset(sorted(m.Answer, name), hugeAll)) {
			t.Errorf("%s %s through BIND with max_answers 100: %s (%d records); want NOERROR with 1 to 100 of huge's instances", name, dns.TypeToString[qt], describe(m), n)
		}
	}
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	return !slices.ContainsFunc(a, func(x string) bool { return !slices.Contains(b, x) })
}
