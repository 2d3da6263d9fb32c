package rollcall_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/file"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/plugin/whoami"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/plugin"
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
			c := testkit.StartCoreDNS(b, fmt.Sprintf("infra.example.com:%d {\n bind 127.0.0.1\n %s\n}\n", port, s.body))
			inst := c.Instance
			b.Cleanup(func() { inst.ShutdownCallbacks() })
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
	c := testkit.StartCoreDNS(b, fmt.Sprintf("infra.example.com:%d {\n bind 127.0.0.1\n rollcall {\n  endpoint %s\n }\n}\n", port, e.ClientURL))
	inst := c.Instance
	b.Cleanup(func() { inst.ShutdownCallbacks() })
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
