package rollcall

import (
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name   string
		rel    string
		kind   nameKind
		a, svc string
	}{
		{name: "apex", rel: "", kind: nameApex},
		{name: "service", rel: "web.", kind: nameService, a: "web"},
		{name: "master form", rel: "web-master.", kind: nameService, a: "web-master"},
		{name: "host or shard", rel: "h1.web.", kind: nameInstance, a: "h1", svc: "web"},
		{name: "port", rel: "_http._tcp.web.", kind: namePort, a: "_http._tcp", svc: "web"},
		{name: "udp port", rel: "_dns._udp.web.", kind: namePort, a: "_dns._udp", svc: "web"},
		{name: "bad proto", rel: "_http._sctp.web.", kind: nameNone},
		{name: "three plain labels: below an instance", rel: "x.h1.web.", kind: nameNone},
		{name: "four labels", rel: "a.b.c.d.", kind: nameNone},
		{name: "empty label", rel: ".web.", kind: nameNone},
		{name: "escape", rel: `w\.eb.`, kind: nameNone},
		{name: "no trailing dot", rel: "web", kind: nameNone},
		{name: "port without name", rel: "_._tcp.web.", kind: nameNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseName([]byte(tt.rel))
			if got.kind != tt.kind || string(got.label) != tt.a || string(got.svc) != tt.svc {
				t.Errorf("parseName(%q) = {%d %q %q}, want {%d %q %q}", tt.rel, got.kind, got.label, got.svc, tt.kind, tt.a, tt.svc)
			}
		})
	}
}

func TestZoneOf(t *testing.T) {
	zones := []string{"example.com.", "infra.example.com.", "."}
	tests := []struct {
		name  string
		qname string
		zone  int
		rel   string
	}{
		{name: "longest zone wins", qname: "web.infra.example.com.", zone: 1, rel: "web."},
		{name: "case-insensitive", qname: "WEB.Infra.Example.COM.", zone: 1, rel: "WEB."},
		{name: "apex", qname: "infra.example.com.", zone: 1, rel: ""},
		{name: "label boundary", qname: "xinfra.example.com.", zone: 0, rel: "xinfra."},
		{name: "root", qname: "web.org.", zone: 2, rel: "web.org."},
		{name: "root apex", qname: ".", zone: 2, rel: ""},
		{name: "escaped dot is no boundary", qname: `web\.infra.example.com.`, zone: 0, rel: `web\.infra.`},
		{name: "escaped backslash then a dot is", qname: `web\\.infra.example.com.`, zone: 1, rel: `web\\.`},
		{name: "escaped dot at the start", qname: `\.infra.example.com.`, zone: 0, rel: `\.infra.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, cut := zoneOf(zones, tt.qname)
			if z != tt.zone || tt.qname[:cut] != tt.rel {
				t.Errorf("zoneOf(%q) = %d, %q; want %d, %q", tt.qname, z, tt.qname[:cut], tt.zone, tt.rel)
			}
		})
	}
	if z, _ := zoneOf([]string{"infra.example.com."}, "example.org."); z != -1 {
		t.Errorf("out of zone: got zone %d, want -1", z)
	}
}

func TestMasterBase(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "master", in: "web-master", want: "web"},
		{name: "only suffix", in: "-master", want: ""},
		{name: "no suffix", in: "web", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(masterBase([]byte(tt.in))); got != tt.want {
				t.Errorf("masterBase(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzParseName checks that any query name, however odd, parses without a
// panic, and that what it yields is a slice of the lower-cased input.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"web.infra.example.com.", "_http._tcp.web.infra.example.com.", "h1.web.infra.example.com.",
		"web-master.infra.example.com.", "infra.example.com.", `a\.b.infra.example.com.`, "..infra.example.com.", "WEB.INFRA.EXAMPLE.COM."} {
		f.Add(s)
	}
	zones := []string{"infra.example.com.", "example.org."}
	f.Fuzz(func(t *testing.T, name string) {
		z, cut := zoneOf(zones, name)
		if z < 0 {
			return
		}
		if cut < 0 || cut > len(name) {
			t.Fatalf("cut %d outside %q", cut, name)
		}
		var buf [maxName]byte
		q := parseQuery(buf[:], name[:cut])
		if cut > maxName {
			if q.kind != nameNone {
				t.Fatalf("overlong name parsed as %d", q.kind)
			}
			return
		}
		rel := lowerInto(buf[:], name[:cut])
		for _, part := range [][]byte{q.label, q.svc} {
			if len(part) > 0 && !strings.Contains(string(rel), string(part)) {
				t.Fatalf("label %q not in %q", part, rel)
			}
		}
		if q.kind == namePort && (len(q.label) < 6 || q.label[0] != '_') {
			t.Fatalf("port form %q", q.label)
		}
	})
}
