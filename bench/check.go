package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Checker judges one answer to one query of the mix.
type Checker func(q Query, m *dns.Msg) error

// checkAddrs is the checker of the contenders that serve the data set: the
// answer's A records are exactly the wanted addresses.
func checkAddrs(q Query, m *dns.Msg) error {
	if m.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("%s: rcode %s, want NOERROR", q.Name, dns.RcodeToString[m.Rcode])
	}
	got := answerAddrs(m)
	if !slices.Equal(got, q.Want) {
		return fmt.Errorf("%s (%s): got %v, want %v", q.Name, q.Kind, got, q.Want)
	}
	return nil
}

// checkWhoami is whoami's checker: it answers every name with the client's
// address in the additional section.
func checkWhoami(q Query, m *dns.Msg) error {
	if m.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("%s: rcode %s, want NOERROR", q.Name, dns.RcodeToString[m.Rcode])
	}
	for _, rr := range m.Extra {
		if a, ok := rr.(*dns.A); ok && a.A.String() == "127.0.0.1" {
			return nil
		}
	}
	return fmt.Errorf("%s: whoami answer has no A 127.0.0.1 in the additional section: %v", q.Name, m.Extra)
}

// answerAddrs returns the distinct A addresses of m's answer, sorted.
func answerAddrs(m *dns.Msg) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, rr := range m.Answer {
		a, ok := rr.(*dns.A)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.A.To4())
		if ok && !seen[ip] {
			seen[ip] = true
			out = append(out, ip)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// exchange sends one A query over UDP with a 4096-byte EDNS0 buffer (so a
// service's full set fits) and returns the answer.
func exchange(ctx context.Context, addr, name string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.SetEdns0(4096, false)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, addr)
	if err != nil {
		return nil, fmt.Errorf("query %s at %s: %w", name, addr, err)
	}
	return r, nil
}

// CheckAll asks the server every query in qs (at most limit of them, spread
// over the mix) and returns every wrong answer, up to five, in one error.
func CheckAll(ctx context.Context, addr string, qs []Query, limit int, check Checker) error {
	step := 1
	if limit > 0 && len(qs) > limit {
		step = len(qs) / limit
	}
	var bad []string
	n := 0
	for i := 0; i < len(qs); i += step {
		n++
		q := qs[i]
		m, err := exchange(ctx, addr, q.Name)
		if err == nil {
			err = check(q, m)
		}
		if err != nil {
			bad = append(bad, err.Error())
		}
	}
	if nbad := len(bad); nbad > 0 {
		return fmt.Errorf("%d of %d answers wrong: %s", nbad, n, strings.Join(bad[:min(nbad, 5)], "; "))
	}
	return nil
}
