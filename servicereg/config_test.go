package servicereg

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/etcdconn"
)

// writeConfig writes the main file and services.d files into a new folder
// and returns the main file's path.
func writeConfig(t *testing.T, main string, servicesD map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "servicereg.yml")
	if err := os.WriteFile(p, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(servicesD) > 0 {
		if err := os.MkdirAll(filepath.Join(dir, ServicesDir), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range servicesD {
			if err := os.WriteFile(filepath.Join(dir, ServicesDir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return p
}

func TestLoadConfigFull(t *testing.T) {
	p := writeConfig(t, `
host: host1
etcd:
  endpoints: ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
prefix: /rc
ttl: 15s
systemd: user
networks:
  vpn0: ["10.100.0.0/16"]
  lan: ["10.0.0.0/8", "fd00::/64"]
addrs:
  public: ["192.0.2.10"]
services:
  - name: web
    unit: nginx.service
    ports: [{name: http, port: 8080, proto: tcp}, {name: dns, port: 53, proto: udp}]
    shard: s1
    master_election: true
    on_master: ["/usr/local/bin/promote", "--now"]
    on_standby: ["/usr/local/bin/demote"]
`, map[string]string{
		"a.yml":       "- name: api\n  ports: [{name: grpc, port: 9000}]\n",
		"b.yml":       "# nothing yet\n",
		"ignored.txt": "not: yaml: at all: [",
	})
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "host1" || cfg.Prefix != "/rc" || cfg.TTL != 15*time.Second || cfg.Systemd != SystemdUser ||
		len(cfg.Etcd.Endpoints) != 2 {
		t.Fatalf("top level: %+v", cfg)
	}
	if len(cfg.Networks) != 2 || cfg.Networks[0].Name != "vpn0" || cfg.Networks[1].Name != "lan" || len(cfg.Networks[1].CIDRs) != 2 {
		t.Fatalf("networks (file order matters): %+v", cfg.Networks)
	}
	if len(cfg.Addrs["public"]) != 1 {
		t.Fatalf("addrs: %v", cfg.Addrs)
	}
	if len(cfg.Services) != 2 {
		t.Fatalf("services: %+v", cfg.Services)
	}
	web, api := cfg.Services[0], cfg.Services[1]
	if web.Unit != "nginx.service" || web.Shard != "s1" || !web.MasterElection || len(web.Ports) != 2 ||
		web.Ports[1].Proto != "udp" || len(web.OnMaster) != 2 || len(web.OnStandby) != 1 {
		t.Fatalf("web: %+v", web)
	}
	if api.Unit != "api.service" || api.Ports[0].Proto != "tcp" || !strings.HasSuffix(api.Source, "a.yml:1") {
		t.Fatalf("api (defaults, source): %+v", api)
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseConfig("effective.yml", out)
	if err != nil {
		t.Fatalf("the effective config does not load again: %v\n%s", err, out)
	}
	if len(again.Services) != 2 || again.Networks[0].Name != "vpn0" || again.TTL != cfg.TTL {
		t.Fatalf("round trip lost something:\n%s", out)
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	p := writeConfig(t, "services:\n  - name: web\n", nil)
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	host, err := DefaultHost()
	if err != nil {
		t.Skipf("this machine's host name gives no default: %v", err)
	}
	if cfg.Host != host || cfg.Prefix != "/rollcall" || cfg.TTL != 10*time.Second || cfg.Systemd != SystemdSystem ||
		len(cfg.Etcd.Endpoints) != 1 || cfg.Etcd.Endpoints[0] != etcdconn.DefaultEndpoint || cfg.Services[0].Unit != "web.service" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	cases := []struct {
		name      string
		main      string
		servicesD map[string]string
		want      []string // substrings of the error; FILE is the main file's name
	}{
		{name: "unknown top-level field", main: "host: h1\nhots: h2\n",
			want: []string{`servicereg.yml:2: config: unknown field "hots"; known fields are: host, etcd`}},
		{name: "unknown service field", main: "services:\n  - name: web\n    prot: 80\n",
			want: []string{`servicereg.yml:3: services[0]: unknown field "prot"`}},
		{name: "unknown port field", main: "services:\n  - name: web\n    ports:\n      - {name: http, port: 80, protocol: tcp}\n",
			want: []string{`servicereg.yml:4: services[0].ports[0]: unknown field "protocol"`}},
		{name: "bad service name", main: "services:\n  - name: Web_1\n",
			want: []string{`servicereg.yml:2: services[0].name: service name "Web_1" must be a lower-case DNS label`}},
		{name: "missing service name", main: "services:\n  - unit: x.service\n",
			want: []string{`servicereg.yml:2: services[0]: name is missing`}},
		{name: "duplicate service in one file", main: "services:\n  - name: web\n  - name: web\n",
			want: []string{`servicereg.yml:3: service "web" is defined twice (first at `, `servicereg.yml:2)`}},
		{name: "duplicate service across files", main: "services:\n  - name: web\n",
			servicesD: map[string]string{"more.yml": "- name: api\n- name: web\n"},
			want:      []string{`more.yml:2: service "web" is defined twice (first at `, `servicereg.yml:2)`}},
		{name: "bad CIDR", main: "networks:\n  vpn0: [\"10.100.0.0/16\", \"10.300.0.0/16\"]\n",
			want: []string{`servicereg.yml:2: networks.vpn0: "10.300.0.0/16" is not a CIDR`}},
		{name: "CIDR with host bits", main: "networks:\n  vpn0:\n    - 10.100.0.1/16\n",
			want: []string{`servicereg.yml:3: networks.vpn0: "10.100.0.1/16" has host bits set: write 10.100.0.0/16`}},
		{name: "bad network name", main: "networks:\n  VPN: [\"10.0.0.0/8\"]\n",
			want: []string{`servicereg.yml:2: networks.VPN: network name "VPN" must be a lower-case DNS label`}},
		{name: "port out of range", main: "services:\n  - name: web\n    ports: [{name: http, port: 70000}]\n",
			want: []string{`servicereg.yml:3: services[0].ports[0].port: 70000 is outside 1-65535`}},
		{name: "port not a number", main: "services:\n  - name: web\n    ports: [{name: http, port: eighty}]\n",
			want: []string{`servicereg.yml:3: services[0].ports[0].port must be a whole number, not the value "eighty"`}},
		{name: "bad proto", main: "services:\n  - name: web\n    ports: [{name: http, port: 80, proto: sctp}]\n",
			want: []string{`servicereg.yml:3: services[0].ports[0].proto: "sctp" must be tcp or udp`}},
		{name: "port without name", main: "services:\n  - name: web\n    ports: [{port: 80}]\n",
			want: []string{`servicereg.yml:3: services[0].ports[0]: name is missing`}},
		{name: "bad address", main: "addrs:\n  public: [\"192.0.2.300\"]\n",
			want: []string{`servicereg.yml:2: addrs.public: "192.0.2.300" is not an IP address`}},
		{name: "zoned address", main: "addrs:\n  public:\n    - fe80::1%eth0\n",
			want: []string{`servicereg.yml:3: addrs.public: address fe80::1%eth0 has a zone`}},
		{name: "bad endpoint", main: "etcd:\n  endpoints: [\"10.0.0.1:2379\"]\n",
			want: []string{`servicereg.yml:2: etcd.endpoints: endpoint "10.0.0.1:2379" must be a URL like http://127.0.0.1:2379`}},
		{name: "half TLS", main: "etcd:\n  cert: /nonexistent/c.pem\n",
			want: []string{`servicereg.yml:2: etcd: cert, key and ca go together`}},
		{name: "ttl without unit", main: "ttl: 10\n",
			want: []string{`servicereg.yml:1: ttl "10" needs a unit: write 10s`}},
		{name: "ttl not whole seconds", main: "ttl: 1500ms\n",
			want: []string{`servicereg.yml:1: ttl: ttl 1.5s must be whole seconds`}},
		{name: "bad systemd", main: "systemd: session\n",
			want: []string{`servicereg.yml:1: systemd: systemd "session" must be "system" or "user"`}},
		{name: "bad prefix", main: "prefix: rollcall\n",
			want: []string{`servicereg.yml:1: prefix: prefix "rollcall" must start with '/'`}},
		{name: "bad host", main: "host: Host.Example\n",
			want: []string{`servicereg.yml:1: host: host name "Host.Example" must be a lower-case DNS label`}},
		{name: "bad unit", main: "services:\n  - name: web\n    unit: web\n",
			want: []string{`servicereg.yml:3: services[0].unit: unit "web" needs a unit type suffix such as .service`}},
		{name: "hook without election", main: "services:\n  - name: web\n    on_master: [\"/bin/true\"]\n",
			want: []string{`servicereg.yml:3: services[0].on_master: hooks run on master changes: set master_election: true`}},
		{name: "hook as string", main: "services:\n  - name: web\n    master_election: true\n    on_master: /bin/true\n",
			want: []string{`servicereg.yml:4: services[0].on_master must be a list`}},
		{name: "election not a bool", main: "services:\n  - name: web\n    master_election: yes please\n",
			want: []string{`servicereg.yml:3: services[0].master_election must be true or false`}},
		{name: "services not a list", main: "services:\n  name: web\n",
			want: []string{`servicereg.yml:2: services must be a list of services`}},
		{name: "services.d file as a mapping", main: "host: h1\n",
			servicesD: map[string]string{"web.yml": "services:\n  - name: web\n"},
			want:      []string{`web.yml:1: a services.d file is a YAML list of services`}},
		{name: "error in services.d file", main: "host: h1\n",
			servicesD: map[string]string{"web.yml": "- name: web\n  ports: [{name: http, port: 0}]\n"},
			want:      []string{`web.yml:2: services[0].ports[0].port: 0 is outside 1-65535`}},
		{name: "key twice", main: "host: h1\nhost: h2\n",
			want: []string{`servicereg.yml:2: config: "host" is set twice (first on line 1)`}},
		{name: "not YAML", main: "host: [h1\n",
			want: []string{`servicereg.yml: not valid YAML`}},
		{name: "aliases refused", main: "networks:\n  a: &n [\"10.0.0.0/8\"]\n  b: *n\n",
			want: []string{`servicereg.yml:2: networks.a: YAML anchors and aliases are not supported`}},
		{name: "two documents", main: "host: h1\n---\nhost: h2\n",
			want: []string{`servicereg.yml:2: a second YAML document`}},
		{name: "too many addresses", main: "addrs:\n  public: [" + manyAddrs(65) + "]\n",
			want: []string{`servicereg.yml: addrs.public: 65 addresses, at most 64 per network`}},
		{name: "every problem at once", main: "hots: h1\nttl: 5\n",
			want: []string{`servicereg.yml:1: config: unknown field "hots"`, `servicereg.yml:2: ttl "5" needs a unit`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeConfig(t, c.main, c.servicesD)
			_, err := LoadConfig(p)
			if err == nil {
				t.Fatalf("config accepted:\n%s", c.main)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestNormalizeCodeConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "valid", cfg: Config{Host: "h1", Services: []Service{{Name: "web"}}}},
		{name: "bad service name", cfg: Config{Host: "h1", Services: []Service{{Name: "-web"}}}, want: `service name "-web"`},
		{name: "duplicate", cfg: Config{Host: "h1", Services: []Service{{Name: "web"}, {Name: "web"}}}, want: "defined twice"},
		{name: "bad ttl", cfg: Config{Host: "h1", TTL: 500 * time.Millisecond}, want: "whole seconds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Normalize()
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Normalize = %v, want %q", err, c.want)
			}
		})
	}
}

func FuzzConfig(f *testing.F) {
	f.Add([]byte("host: h1\nservices:\n  - name: web\n    ports: [{name: http, port: 8080, proto: tcp}]\n"))
	f.Add([]byte("networks:\n  vpn0: [\"10.100.0.0/16\"]\naddrs:\n  public: [\"192.0.2.10\"]\nttl: 10s\n"))
	f.Add([]byte("etcd:\n  endpoints: [\"http://127.0.0.1:2379\"]\nsystemd: user\nprefix: /rc\n"))
	f.Add([]byte("services:\n  - name: web\n    master_election: true\n    on_master: [\"/bin/true\"]\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte("- 1\n- 2\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("fuzz.yml", data)
		if err != nil {
			return
		}
		// Whatever loads prints as an effective config that loads again.
		out, err := cfg.YAML()
		if err != nil {
			t.Fatalf("YAML of a loaded config: %v", err)
		}
		if _, err := ParseConfig("effective.yml", out); err != nil {
			t.Fatalf("effective config does not load again: %v\ninput:\n%s\noutput:\n%s", err, data, out)
		}
	})
}

// manyAddrs returns n distinct quoted IPv4 addresses, comma-separated.
func manyAddrs(n int) string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("%q", fmt.Sprintf("192.0.2.%d", i+1)))
	}
	return strings.Join(out, ", ")
}
