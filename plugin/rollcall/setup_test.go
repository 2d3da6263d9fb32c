package rollcall

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/coredns/caddy"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string // substring of the error; "" for success
		check   func(t *testing.T, c *config)
	}{
		{name: "defaults", input: "rollcall infra.example.com", check: func(t *testing.T, c *config) {
			if !reflect.DeepEqual(c.endpoints, []string{"http://127.0.0.1:2379"}) || c.prefix != "/rollcall" || c.ttl != 5 || c.ecs || c.local != "" || len(c.nets) != 0 || c.viewDependent || c.maxAnswers != 0 {
				t.Errorf("defaults: %+v", c)
			}
			if !reflect.DeepEqual(c.zones, []string{"infra.example.com."}) {
				t.Errorf("zones %v", c.zones)
			}
		}},
		{name: "every option", input: `rollcall a.example.com B.example.com {
			endpoint http://10.0.0.1:2379 https://10.0.0.2:2379
			tls c.pem k.pem ca.pem
			prefix /other/
			ttl 30
			network vpn0 10.100.0.0/16 fd00::/64
			network vpn1 10.200.0.0/16
			local host1
			ecs
			max_answers 100
			fallthrough example.org
		}`, check: func(t *testing.T, c *config) {
			if c.maxAnswers != 100 {
				t.Errorf("max_answers %d, want 100", c.maxAnswers)
			}
			if !reflect.DeepEqual(c.zones, []string{"a.example.com.", "b.example.com."}) {
				t.Errorf("zones %v", c.zones)
			}
			if len(c.endpoints) != 2 || c.tlsCert != "c.pem" || c.tlsKey != "k.pem" || c.tlsCA != "ca.pem" || c.prefix != "/other/" || c.ttl != 30 {
				t.Errorf("options: %+v", c)
			}
			if len(c.nets) != 2 || c.nets[0].name != "vpn0" || c.nets[0].prefixes[1] != netip.MustParsePrefix("fd00::/64") {
				t.Errorf("networks %+v", c.nets)
			}
			if c.local != "host1" || !c.ecs || !c.viewDependent || c.viewDirective != "network" {
				t.Errorf("views: %+v", c)
			}
			if !c.fall.Through("x.example.org.") || c.fall.Through("x.a.example.com.") {
				t.Errorf("fallthrough %+v", c.fall)
			}
		}},
		{name: "CIDR masked", input: "rollcall {\nnetwork vpn0 10.100.3.4/16\n}", check: func(t *testing.T, c *config) {
			if c.nets[0].prefixes[0] != netip.MustParsePrefix("10.100.0.0/16") {
				t.Errorf("prefix %v", c.nets[0].prefixes[0])
			}
		}},
		{name: "max_answers zero", input: "rollcall {\nmax_answers 0\n}", wantErr: `Testfile:2 - Error during parsing: max_answers "0" is not a number of instances from 1 to 65535`},
		{name: "max_answers word", input: "rollcall {\nmax_answers all\n}", wantErr: `max_answers "all" is not a number`},
		{name: "max_answers no value", input: "rollcall {\nmax_answers\n}", wantErr: "max_answers needs one number"},
		{name: "unknown option", input: "rollcall {\n  bogus 1\n}", wantErr: `Testfile:2 - Error during parsing: unknown option "bogus"`},
		{name: "bad endpoint", input: "rollcall {\nendpoint 127.0.0.1:2379\n}", wantErr: "Testfile:2 - Error during parsing: endpoint \"127.0.0.1:2379\" is not an etcd client URL"},
		{name: "endpoint without URL", input: "rollcall {\nendpoint\n}", wantErr: "Testfile:2"},
		{name: "tls with two files", input: "rollcall {\ntls a b\n}", wantErr: "tls needs three files"},
		{name: "bad prefix", input: "rollcall {\n\nprefix rollcall\n}", wantErr: "Testfile:3"},
		{name: "bad ttl", input: "rollcall {\nttl -1\n}", wantErr: `Testfile:2 - Error during parsing: ttl "-1" is not a number`},
		{name: "network without CIDR", input: "rollcall {\nnetwork vpn0\n}", wantErr: "network needs a name and at least one CIDR"},
		{name: "bad CIDR", input: "rollcall {\nnetwork vpn0 10.0.0.0/33\n}", wantErr: `Testfile:2 - Error during parsing: network vpn0: "10.0.0.0/33" is not a CIDR`},
		{name: "bad network name", input: "rollcall {\nnetwork VPN 10.0.0.0/8\n}", wantErr: "network name \"VPN\""},
		{name: "public is not an overlay", input: "rollcall {\nnetwork public 10.0.0.0/8\n}", wantErr: "public is the default network"},
		{name: "network twice", input: "rollcall {\nnetwork a 10.0.0.0/8\nnetwork a 11.0.0.0/8\n}", wantErr: "Testfile:3 - Error during parsing: network a is declared twice"},
		{name: "bad local host", input: "rollcall {\nlocal Host_1\n}", wantErr: "local: "},
		{name: "local without host", input: "rollcall {\nlocal\n}", wantErr: "local needs the name"},
		{name: "ecs with argument", input: "rollcall {\necs yes\n}", wantErr: "ecs takes no arguments"},
		{name: "twice in a block", input: "rollcall\nrollcall", wantErr: "once per server block"},
		{name: "fail_open on by default", input: "rollcall", check: func(t *testing.T, c *config) {
			if c.failClosed {
				t.Errorf("fail_open off without the option")
			}
		}},
		{name: "fail_open off", input: "rollcall {\nfail_open off\n}", check: func(t *testing.T, c *config) {
			if !c.failClosed || !newRollcall(c).ix.failClosed {
				t.Errorf("fail_open off not taken: config %v, index %v", c.failClosed, newRollcall(c).ix.failClosed)
			}
		}},
		{name: "fail_open on", input: "rollcall {\nfail_open on\n}", check: func(t *testing.T, c *config) {
			if c.failClosed {
				t.Errorf("fail_open on taken as off")
			}
		}},
		{name: "fail_open without value", input: "rollcall {\nfail_open\n}", wantErr: "Testfile:2 - Error during parsing: fail_open needs on or off"},
		{name: "fail_open yes", input: "rollcall {\nfail_open yes\n}", wantErr: "fail_open needs on or off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := caddy.NewTestController("dns", tt.input)
			cfg, err := parse(c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestLoaderKeySharing(t *testing.T) {
	parseBlock := func(s string) *config {
		c, err := parse(caddy.NewTestController("dns", s))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{name: "different zones and views share", a: "rollcall a.example {\nnetwork v 10.0.0.0/8\n}", b: "rollcall b.example {\necs\n}", same: true},
		{name: "trailing slash of prefix is the same prefix", a: "rollcall {\nprefix /x/\n}", b: "rollcall {\nprefix /x\n}", same: true},
		{name: "other prefix", a: "rollcall {\nprefix /x\n}", b: "rollcall {\nprefix /y\n}", same: false},
		{name: "other endpoint", a: "rollcall {\nendpoint http://127.0.0.1:1\n}", b: "rollcall", same: false},
		{name: "tls differs", a: "rollcall {\ntls a b c\n}", b: "rollcall", same: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseBlock(tt.a).loaderKey() == parseBlock(tt.b).loaderKey(); got != tt.same {
				t.Errorf("same loader: %v, want %v", got, tt.same)
			}
		})
	}
}
