package rollcall

import (
	"fmt"
	"testing"

	"github.com/rollcall/rollcall/registry"
)

// bigState is a registry of 100,000 instances: 1,000 hosts with 100
// services each, every host on public and one overlay.
func bigState(tb testing.TB) *state {
	st := newState(registry.MustKeys("/rollcall"))
	ch := newChanges()
	rev := int64(0)
	for h := 0; h < 1000; h++ {
		host := fmt.Sprintf("h%d", h)
		rev++
		if err := st.put("/rollcall/hosts/"+host+"/host", fmt.Appendf(nil, `{"name":%q,"addrs":{"public":["192.0.%d.%d"],"vpn0":["10.100.%d.%d"]}}`, host, h/250, h%250+1, h/250, h%250+1), rev, ch); err != nil {
			tb.Fatal(err)
		}
		for s := 0; s < 100; s++ {
			rev++
			svc := fmt.Sprintf("s%d", s)
			if err := st.put("/rollcall/hosts/"+host+"/services/"+svc, fmt.Appendf(nil, `{"service":%q,"host":%q,"ports":[{"name":"http","port":80,"proto":"tcp"}]}`, svc, host), rev, ch); err != nil {
				tb.Fatal(err)
			}
		}
	}
	st.rev = rev
	return st
}

// BenchmarkIndexUpdateOneInstance measures what one instance change costs
// in an index of 100,000 instances: its service's answers are rebuilt, the
// others' (and its unchanged siblings') are kept.
func BenchmarkIndexUpdateOneInstance(b *testing.B) {
	st := bigState(b)
	ix := newIndex(testNets(), "")
	ix.replace(st)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		ch := newChanges()
		val := fmt.Appendf(nil, `{"service":"s7","host":"h3","shard":"x%d"}`, i%2)
		if err := st.put("/rollcall/hosts/h3/services/s7", val, st.rev+1, ch); err != nil {
			b.Fatal(err)
		}
		st.rev++
		ix.update(st, ch)
	}
}

// BenchmarkIndexReplace measures a full rebuild of 100,000 instances: what
// the first list and every re-list cost, off the query path.
func BenchmarkIndexReplace(b *testing.B) {
	st := bigState(b)
	ix := newIndex(testNets(), "")
	b.ReportAllocs()
	for b.Loop() {
		ix.replace(st)
	}
}
