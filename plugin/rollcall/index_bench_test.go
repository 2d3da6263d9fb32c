package rollcall

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"

	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

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

// scaleState is the scale benchmark's data set (bench/data.go) decoded as
// the loader decodes a list: 10,000 services of 10 instances over 10,000
// hosts, each host on public and both overlays of testNets, each instance
// with a shard and a port, two candidates per service. The values are
// encoded by registry and the keys are fresh strings, as etcd's are.
func scaleState(tb testing.TB) *state {
	const services, perService, hosts = 10000, 10, 10000
	keys := registry.MustKeys("/rcbig")
	st := newState(keys)
	ch := newChanges()
	rev := int64(0)
	put := func(key string, value []byte) {
		rev++
		if err := st.put(key, value, rev, ch); err != nil {
			tb.Fatal(err)
		}
	}
	host := func(h int) string { return fmt.Sprintf("h-%05d", h) }
	for h := 0; h < hosts; h++ {
		v, err := registry.EncodeHost(&registry.Host{Name: host(h), Addrs: registry.Addrs{
			registry.PublicNetwork: {netip.AddrFrom4([4]byte{198, 18 + byte(h>>16), byte(h >> 8), byte(h)})},
			"vpn0":                 {netip.AddrFrom4([4]byte{10, 100 + byte(h>>16), byte(h >> 8), byte(h)})},
			"vpn1":                 {netip.AddrFrom4([4]byte{10, 200 + byte(h>>16), byte(h >> 8), byte(h)})},
		}})
		if err != nil {
			tb.Fatal(err)
		}
		put(keys.Host(host(h)), v)
	}
	for s := 0; s < services; s++ {
		svc := fmt.Sprintf("svc-%05d", s)
		for j := 0; j < perService; j++ {
			h := host((s + j) % hosts)
			v, err := registry.EncodeInstance(&registry.Instance{
				Service: svc, Host: h, Shard: "s" + strconv.Itoa(j),
				Ports: []registry.Port{{Name: "http", Port: 8080, Proto: "tcp"}},
			})
			if err != nil {
				tb.Fatal(err)
			}
			put(keys.Instance(h, svc), v)
		}
		for j := 0; j < 2; j++ {
			put(keys.Election(svc)+"/"+strconv.FormatInt(int64(1000+(s+j)%hosts), 16), []byte(host((s+j)%hosts)))
		}
	}
	st.rev = rev
	return st
}

// liveHeap is the heap in use after a full collection (what the process
// holds, garbage excluded), and of it the bytes the collector must scan
// for pointers: what every GC cycle's marking costs, on the query path's
// CPU too.
func liveHeap() (live, scan uint64) {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/heap:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// memSink keeps BenchmarkIndexMemory's last state and index alive until
// the end of the run, so that -memprofile (written then) shows them as in
// use.
var memSink []any

// BenchmarkIndexMemory measures what the scale data set (100,000 instances)
// holds in memory once listed: the decoded state and one server block's
// index, in bytes per instance, each after a full collection so garbage is
// not counted, and of them the bytes holding pointers, which every GC cycle
// scans (scan-B/instance). The figures are deterministic for a given Go version; run
// with -benchtime 1x (each iteration builds the whole set), and with
// -memprofile to see where the bytes are (pprof -sample_index=inuse_space).
func BenchmarkIndexMemory(b *testing.B) {
	var stateB, indexB, scanB float64
	for b.Loop() {
		base, baseScan := liveHeap()
		st := scaleState(b)
		withState, _ := liveHeap()
		ix := newIndex(testNets(), "")
		ix.replace(st)
		withIndex, scan := liveHeap()
		stateB += float64(withState - base)
		indexB += float64(withIndex - withState)
		scanB += float64(scan - baseScan)
		memSink = []any{st, ix}
	}
	n := float64(b.N) * 100000
	b.ReportMetric(stateB/n, "state-B/instance")
	b.ReportMetric(indexB/n, "index-B/instance")
	b.ReportMetric((stateB+indexB)/n, "bytes/instance")
	b.ReportMetric(scanB/n, "scan-B/instance")
}

// BenchmarkServeDNSScale answers from one block's index of the scale data
// set (100,000 instances), from a client on an overlay, through CoreDNS's
// ScrubWriter (the packed path). hot asks the same four names (one of each
// shape: service, host.service, shard.service, service-master) over and
// over, so the index's data they read stays in the CPU's caches; random
// asks the same shapes of services drawn at random, as a server's clients
// do, so most reads of the index miss the caches; hot-names asks the hot
// names in as many distinct queries as random, so that reading the queries
// costs the same. random minus hot-names is what the index's memory layout
// costs a query in a real server, where the
// in-process benchmarks on the small fixture (BenchmarkServeDNS) cannot
// show it. Run with -cpu 1.
func BenchmarkServeDNSScale(b *testing.B) {
	const zone = "infra.example.com."
	rc := blockHandler(b, zone, "network vpn0 10.100.0.0/16 127.0.1.0/24\nnetwork vpn1 10.200.0.0/16", scaleState(b))
	type query struct {
		m *dns.Msg
		w dns.ResponseWriter
	}
	from := &net.UDPAddr{IP: net.ParseIP("127.0.1.5"), Port: 5353}
	ask := func(svc int, shape int) query {
		name := fmt.Sprintf("svc-%05d", svc)
		switch shape {
		case 1:
			name = fmt.Sprintf("h-%05d.%s", (svc+3)%10000, name)
		case 2:
			name = "s5." + name
		case 3:
			name += "-master"
		}
		m := new(dns.Msg)
		m.SetQuestion(name+"."+zone, dns.TypeA)
		return query{m: m, w: request.NewScrubWriter(m, &benchWriter{addr: from})}
	}
	const n = 1 << 16 // distinct queries of the random mix, 64 KiB of questions
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]query, n)
	for i := range random {
		random[i] = ask(rnd.IntN(10000), i%4)
	}
	hot := make([]query, 4)
	// The hot names in as many distinct queries as the random mix: what
	// reading the queries themselves costs, set apart from the index.
	hotNames := make([]query, n)
	for i := range hot {
		hot[i] = ask(42, i)
	}
	for i := range hotNames {
		hotNames[i] = ask(42, i%4)
	}
	for _, mix := range []struct {
		name string
		qs   []query
	}{{"hot", hot}, {"hot-names", hotNames}, {"random", random}} {
		b.Run(mix.name, func(b *testing.B) {
			ctx := context.Background()
			for _, q := range mix.qs[:4] {
				if rcode, err := rc.ServeDNS(ctx, q.w, q.m); rcode != dns.RcodeSuccess || err != nil {
					b.Fatalf("%s: rcode %d, %v", q.m.Question[0].Name, rcode, err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				q := mix.qs[i&(len(mix.qs)-1)]
				rc.ServeDNS(ctx, q.w, q.m)
				i++
			}
		})
	}
}
