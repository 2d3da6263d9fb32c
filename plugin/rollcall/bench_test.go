package rollcall_test

import (
	"context"
	"fmt"
	"io"
	golog "log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/file"
	clog "github.com/coredns/coredns/plugin/log"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/response"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/plugin/whoami"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/plugin/rollcall"
	"github.com/rollcall/rollcall/test/testkit"
)

// zoneFile is the file plugin's yardstick: the public answers of web.
const zoneFile = `$ORIGIN infra.example.com.
@ 5 IN SOA ns.dns.infra.example.com. hostmaster.infra.example.com. 1 7200 1800 86400 5
@ 5 IN NS ns.dns.infra.example.com.
web 5 IN A 192.0.2.1
web 5 IN A 192.0.2.2
web 5 IN A 192.0.2.3
web 5 IN A 192.0.2.4
h1.web 5 IN A 192.0.2.1
`

type fixedWriter struct {
	test.ResponseWriter
	addr net.Addr
}

func (w *fixedWriter) RemoteAddr() net.Addr { return w.addr }

// WriteMsg packs as miekg/dns's writer does before it sends.
func (w *fixedWriter) WriteMsg(m *dns.Msg) error {
	_, err := m.Pack()
	return err
}

// BenchmarkYardsticks compares the handlers alone: whoami (looks nothing
// up), file (a zone in memory) and rollcall with views on, for the same
// question from a client on an overlay.
func BenchmarkYardsticks(b *testing.B) {
	z, err := file.Parse(strings.NewReader(zoneFile), "infra.example.com.", "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	fl := file.File{Zones: file.Zones{Z: map[string]*file.Zone{"infra.example.com.": z}, Names: []string{"infra.example.com."}}}
	handlers := []struct {
		name string
		h    plugin.Handler
	}{
		{name: "whoami", h: whoami.Whoami{}},
		{name: "file", h: fl},
		{name: "rollcall-views", h: rollcall.FixtureHandler(b, "infra.example.com.")},
		{name: "rollcall-plain", h: rollcall.FixtureHandler(b, "plain.example.com.")},
	}
	for _, q := range []string{"web", "h1.web", "web-master"} {
		for _, h := range handlers {
			b.Run(h.name+"/"+q, func(b *testing.B) {
				zone := "infra.example.com."
				if h.name == "rollcall-plain" {
					zone = "plain.example.com."
				}
				m := new(dns.Msg)
				m.SetQuestion(q+"."+zone, dns.TypeA)
				// Wrapped as CoreDNS's server wraps every writer.
				w := request.NewScrubWriter(m, &fixedWriter{addr: &net.UDPAddr{IP: net.ParseIP("127.0.1.5"), Port: 5353}})
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					h.h.ServeDNS(ctx, w, m)
				}
			})
		}
	}
}

// BenchmarkServer compares whole CoreDNS servers over UDP on loopback:
// whoami, file and rollcall (views on) behind the same server code.
func BenchmarkServer(b *testing.B) {
	e := testkit.StartEtcd(b)
	cli := e.Client(b)
	for _, kv := range rollcall.FixtureKVs() {
		testkit.Put(b, cli, kv.Key, kv.Value)
	}
	dir := b.TempDir()
	zf := filepath.Join(dir, "db.infra")
	if err := os.WriteFile(zf, []byte(zoneFile), 0o644); err != nil {
		b.Fatal(err)
	}
	servers := []struct{ name, body, qname string }{
		{name: "whoami", body: "whoami", qname: "web.infra.example.com."},
		{name: "file", body: "file " + zf, qname: "web.infra.example.com."},
		{name: "rollcall-views", body: "rollcall {\n endpoint " + e.ClientURL + "\n network vpn0 127.0.1.0/24 10.100.0.0/16\n network vpn1 127.0.2.0/24\n}", qname: "web.infra.example.com."},
	}
	for _, s := range servers {
		b.Run(s.name, func(b *testing.B) {
			port := testkit.FreePort(b)
			testkit.StartCoreDNS(b, fmt.Sprintf("infra.example.com:%d {\n bind 127.0.0.1\n %s\n}\n", port, s.body))
			conn, err := (&net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP("127.0.1.5")}}).Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			co := &dns.Conn{Conn: conn}
			m := new(dns.Msg)
			m.SetQuestion(s.qname, dns.TypeA)
			b.ReportAllocs()
			for b.Loop() {
				if err := co.WriteMsg(m); err != nil {
					b.Fatal(err)
				}
				if _, err := co.ReadMsg(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPropagation measures how long an etcd write takes to show in DNS:
// each iteration moves an instance to another shard and asks CoreDNS until
// the new shard name answers.
func BenchmarkPropagation(b *testing.B) {
	e := testkit.StartEtcd(b)
	cli := e.Client(b)
	port := testkit.FreePort(b)
	testkit.StartCoreDNS(b, fmt.Sprintf("infra.example.com:%d {\n bind 127.0.0.1\n rollcall {\n  endpoint %s\n }\n}\n", port, e.ClientURL))
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	co := &dns.Conn{Conn: conn}
	i := 0
	for b.Loop() {
		i++
		shard := fmt.Sprintf("s%d", i)
		testkit.Put(b, cli, "/rollcall/hosts/h1/services/web", `{"service":"web","host":"h1","shard":"`+shard+`","addrs":{"public":["192.0.2.1"]}}`)
		m := new(dns.Msg)
		m.SetQuestion(shard+".web.infra.example.com.", dns.TypeA)
		for {
			if err := co.WriteMsg(m); err != nil {
				b.Fatal(err)
			}
			r, err := co.ReadMsg()
			if err != nil {
				b.Fatal(err)
			}
			if r.Rcode == dns.RcodeSuccess {
				break
			}
		}
	}
}

// errorsPlugin stands in for the errors plugin, whose type is unexported:
// what it does to the response writer is all that matters here, and that is
// plugin.NextOrFailure's wrapping, which this does too.
type errorsPlugin struct{ next plugin.Handler }

func (e errorsPlugin) Name() string { return "errors" }

func (e errorsPlugin) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return plugin.NextOrFailure(e.Name(), e.next, ctx, w, r)
}

// deployedChain puts h behind the plugins a production block carries, as
// CoreDNS chains them: prometheus, errors and, with log, log. A rollcall
// handler learns the chain as its OnStartup would.
func deployedChain(h plugin.Handler, zone string, withLog bool) plugin.Handler {
	next := h
	if withLog {
		rules := []clog.Rule{{NameScope: ".", Class: map[response.Class]struct{}{response.All: {}}, Format: clog.DefaultLogFormat}}
		if rc, ok := h.(*rollcall.Rollcall); ok {
			h = rollcall.InBlock(rc, clog.Logger{Next: rc, Rules: rules})
		}
		next = clog.Logger{Next: h, Rules: rules}
	}
	m := metrics.New("")
	m.AddZone(zone)
	m.Next = errorsPlugin{next: next}
	return m
}

// BenchmarkDeployed compares the handlers behind the plugins of a
// production server block (deploy/coredns/Corefile): alone, behind errors
// and prometheus, and with log too (its lines discarded). rollcall-msg is
// rollcall with every wrapped writer handed a dns.Msg, as before the packed
// path knew the recorders. cpu-ns/op is the process's CPU time per query
// (getrusage): steadier than ns/op on a shared machine; run with -cpu 1 so
// that it counts one CPU's work.
func BenchmarkDeployed(b *testing.B) {
	z, err := file.Parse(strings.NewReader(zoneFile), "infra.example.com.", "bench", 0)
	if err != nil {
		b.Fatal(err)
	}
	fl := file.File{Zones: file.Zones{Z: map[string]*file.Zone{"infra.example.com.": z}, Names: []string{"infra.example.com."}}}
	out := golog.Writer()
	golog.SetOutput(io.Discard)
	b.Cleanup(func() { golog.SetOutput(out) })
	const zone = "infra.example.com."
	handlers := []struct {
		name string
		h    plugin.Handler
	}{
		{name: "whoami", h: whoami.Whoami{}},
		{name: "file", h: fl},
		{name: "rollcall", h: rollcall.FixtureHandler(b, zone)},
		{name: "rollcall-msg", h: rollcall.FixtureHandler(b, zone)},
	}
	for _, chain := range []string{"alone", "errors+prometheus", "errors+prometheus+log"} {
		for _, q := range []string{"web", "h1.web"} {
			for _, h := range handlers {
				b.Run(chain+"/"+q+"/"+h.name, func(b *testing.B) {
					rollcall.SetMsgPathWhenWrapped(b, h.name == "rollcall-msg")
					hh := h.h
					if chain != "alone" {
						hh = deployedChain(hh, zone, strings.HasSuffix(chain, "+log"))
					}
					m := new(dns.Msg)
					m.SetQuestion(q+"."+zone, dns.TypeA)
					w := request.NewScrubWriter(m, &fixedWriter{addr: &net.UDPAddr{IP: net.ParseIP("127.0.1.5"), Port: 5353}})
					ctx := context.Background()
					b.ReportAllocs()
					cpu0 := processCPU()
					for b.Loop() {
						hh.ServeDNS(ctx, w, m)
					}
					b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
				})
			}
		}
	}
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
