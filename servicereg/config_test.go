package servicereg

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/etcdconn"
	healthcheck "github.com/rollcall/rollcall/internal/health"
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
		{name: "bad control", main: "control: run/sock\n",
			want: []string{`servicereg.yml:1: control: control "run/sock" must be an absolute path such as /run/servicereg/control.sock`}},
		{name: "long control", main: "control: /" + strings.Repeat("x", 120) + "\n",
			want: []string{`servicereg.yml:1: control: `, `a unix socket path holds at most 107`}},
		{name: "dns_ttl without unit", main: "dns_ttl: 5\n",
			want: []string{`servicereg.yml:1: dns_ttl "5" needs a unit: write 5s`}},
		{name: "dns_ttl negative", main: "dns_ttl: -1s\n",
			want: []string{`servicereg.yml:1: dns_ttl: dns_ttl -1s must be whole seconds from 0s to 1h0m0s`}},
		{name: "check_concurrency zero", main: "check_concurrency: 0\n",
			want: []string{`servicereg.yml:1: check_concurrency: check_concurrency 0 must be from 1 to 1024`}},
		{name: "check_concurrency not a number", main: "check_concurrency: many\n",
			want: []string{`servicereg.yml:1: check_concurrency must be a whole number`}},
		{name: "state_write_rate zero", main: "state_write_rate: 0\n",
			want: []string{`servicereg.yml:1: state_write_rate: state_write_rate 0 must be above 0 and at most 1000`}},
		{name: "state_write_rate not a number", main: "state_write_rate: fast\n",
			want: []string{`servicereg.yml:1: state_write_rate must be a number such as 1 or 0.5`}},
		{name: "state_write_burst too big", main: "state_write_burst: 5000\n",
			want: []string{`servicereg.yml:1: state_write_burst: state_write_burst 5000 must be from 1 to 1000`}},
		{name: "min_active negative", main: "services:\n  - name: web\n    min_active: -2s\n",
			want: []string{`servicereg.yml:3: services[0].min_active: min_active -2s must be from 0s to 1h0m0s`}},
		{name: "min_active without unit", main: "services:\n  - name: web\n    min_active: 2\n",
			want: []string{`servicereg.yml:3: services[0].min_active "2" needs a unit: write 2s`}},
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

// TestLoadConfigCheckErrors: every mistake in a health check stops the
// config with the line to fix and what to write there.
func TestLoadConfigCheckErrors(t *testing.T) {
	svc := "services:\n  - name: web\n    checks:\n"
	for _, c := range []struct {
		name   string
		checks string // the lines of the checks list, from line 4
		want   []string
	}{
		{"timeout not under interval", "      - tcp: 127.0.0.1:80\n        interval: 5s\n        timeout: 5s\n",
			[]string{`servicereg.yml:6: services[0].checks[0].timeout: timeout 5s must be shorter than interval 5s: write timeout: 2s or interval: 10s`}},
		{"timeout above the default interval", "      - tcp: 127.0.0.1:80\n        timeout: 6s\n",
			[]string{`servicereg.yml:5: services[0].checks[0].timeout: timeout 6s must be shorter than interval 5s`}},
		{"unknown kind", "      - ping: 127.0.0.1\n",
			[]string{`servicereg.yml:4: services[0].checks[0]: unknown field "ping"; known fields are: http, tcp, grpc, exec, interval, timeout, rise, fall`}},
		{"unknown field", "      - tcp: 127.0.0.1:80\n        retries: 3\n",
			[]string{`servicereg.yml:5: services[0].checks[0]: unknown field "retries"; known fields are: http, tcp, grpc, exec, interval, timeout, rise, fall`}},
		{"two kinds in one item", "      - http: http://127.0.0.1:8080/\n        tcp: 127.0.0.1:8080\n",
			[]string{`servicereg.yml:5: services[0].checks[0]: http and tcp in one check: a check has one kind; write each as its own list item (- tcp: ...)`}},
		{"no kind", "      - interval: 5s\n",
			[]string{`servicereg.yml:4: services[0].checks[0]: no check kind: give one of http:, tcp:, grpc: or exec:`}},
		{"bad URL", "      - http: 127.0.0.1:8080/ready\n",
			[]string{`servicereg.yml:4: services[0].checks[0].http: http check URL "127.0.0.1:8080/ready" must start with http:// or https://: write a URL such as http://127.0.0.1:8080/ready`}},
		{"name instead of IP", "      - tcp: 127.0.0.1:80\n      - http: http://localhost:8080/ready\n",
			[]string{`servicereg.yml:5: services[0].checks[1].http: http check URL "http://localhost:8080/ready" names host "localhost": write an IP address such as 127.0.0.1: checks never resolve names, so a check cannot depend on rollcall's own DNS`}},
		{"grpc name instead of IP", "      - grpc: grpc.internal:9090\n",
			[]string{`servicereg.yml:4: services[0].checks[0].grpc: grpc check target "grpc.internal:9090" names host "grpc.internal": write an IP address such as 127.0.0.1`}},
		{"bad port", "      - tcp: 127.0.0.1:70000\n",
			[]string{`servicereg.yml:4: services[0].checks[0].tcp: tcp check target "127.0.0.1:70000": port "70000" is not a number from 1 to 65535`}},
		{"no port", "      - tcp: 127.0.0.1\n",
			[]string{`servicereg.yml:4: services[0].checks[0].tcp: tcp check target "127.0.0.1" is not IP:port: write an address such as 127.0.0.1:8080`}},
		{"empty exec", "      - exec: []\n",
			[]string{`servicereg.yml:4: services[0].checks[0].exec: exec needs a program: write exec: ["/usr/local/bin/check-db"]`}},
		{"exec as a string", "      - exec: /usr/local/bin/check-db --quick\n",
			[]string{`servicereg.yml:4: services[0].checks[0].exec must be a list such as ["/usr/local/bin/check-db", "--quick"]: no shell splits a string`}},
		{"exec bare name", "      - exec: [check-db]\n",
			[]string{`servicereg.yml:4: services[0].checks[0].exec: exec program "check-db" is a bare name: write its path`}},
		{"rise 0", "      - tcp: 127.0.0.1:80\n        rise: 0\n",
			[]string{`servicereg.yml:5: services[0].checks[0].rise 0 must be at least 1: write a count such as rise: 2, or leave it out for the default`}},
		{"fall too big", "      - tcp: 127.0.0.1:80\n        fall: 1000\n",
			[]string{`servicereg.yml:5: services[0].checks[0].fall: fall 1000 is out of range: write a count from 1 to 100`}},
		{"interval 0", "      - tcp: 127.0.0.1:80\n        interval: 0s\n",
			[]string{`servicereg.yml:5: services[0].checks[0].interval 0s must be positive: write a duration such as 5s`}},
		{"interval too short", "      - tcp: 127.0.0.1:80\n        interval: 10ms\n",
			[]string{`servicereg.yml:5: services[0].checks[0].interval: interval 10ms is out of range: write a duration from 100ms to 1h0m0s`}},
		{"interval without unit", "      - tcp: 127.0.0.1:80\n        interval: 5\n",
			[]string{`servicereg.yml:5: services[0].checks[0].interval "5" needs a unit: write 5s`}},
		{"checks not a list", "      tcp: 127.0.0.1:80\n",
			[]string{`servicereg.yml:4: services[0].checks must be a list of checks, each starting with '- http:'`}},
		{"two problems at once", "      - tcp: 127.0.0.1\n      - exec: [x]\n",
			[]string{`servicereg.yml:4: services[0].checks[0].tcp`, `servicereg.yml:5: services[0].checks[1].exec`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := writeConfig(t, svc+c.checks, nil)
			_, err := LoadConfig(p)
			if err == nil {
				t.Fatalf("config accepted:\n%s", svc+c.checks)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestLoadConfigChecks reads checks and the keys the agent's health
// features use, with their defaults.
func TestLoadConfigChecks(t *testing.T) {
	p := writeConfig(t, `
host: h1
control: /run/sr/control.sock
dns_ttl: 0s
check_concurrency: 4
state_write_rate: 0.5
state_write_burst: 2
services:
  - name: web
    min_active: 2s
    checks:
      - http: http://127.0.0.1:8080/ready
        interval: 10s
        timeout: 3s
        rise: 1
        fall: 5
      - tcp: "[::1]:8080"
      - grpc: 127.0.0.1:9090/db.Store
        interval: 1s
      - exec: ["/usr/local/bin/check-db", "--quick"]
`, map[string]string{"api.yml": "- name: api\n"})
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Control != "/run/sr/control.sock" || cfg.DNSTTL != 0 || cfg.CheckConcurrency != 4 || cfg.StateWriteRate != 0.5 || cfg.StateWriteBurst != 2 {
		t.Errorf("top level: %+v", cfg)
	}
	web, api := cfg.Services[0], cfg.Services[1]
	if web.MinActive != 2*time.Second || api.MinActive != 0 || len(api.Checks) != 0 {
		t.Errorf("min_active: web %v api %v; api checks %v", web.MinActive, api.MinActive, api.Checks)
	}
	want := []healthcheck.Spec{
		{Kind: healthcheck.KindHTTP, Target: "http://127.0.0.1:8080/ready", Interval: 10 * time.Second, Timeout: 3 * time.Second, Rise: 1, Fall: 5},
		{Kind: healthcheck.KindTCP, Target: "[::1]:8080", Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3},
		// A short interval's default timeout is half of it.
		{Kind: healthcheck.KindGRPC, Target: "127.0.0.1:9090/db.Store", Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 3},
		{Kind: healthcheck.KindExec, Argv: []string{"/usr/local/bin/check-db", "--quick"}, Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3},
	}
	if len(web.Checks) != len(want) {
		t.Fatalf("checks: %+v", web.Checks)
	}
	for i, c := range web.Checks {
		if !c.Equal(want[i]) {
			t.Errorf("check %d: %+v, want %+v", i, c, want[i])
		}
		if wantSrc := fmt.Sprintf("%s:%d", p, []int{12, 17, 18, 20}[i]); c.Source != wantSrc {
			t.Errorf("check %d: source %q, want %q", i, c.Source, wantSrc)
		}
	}

	// Left out, the keys take their defaults.
	cfg, err = LoadConfig(writeConfig(t, "host: h1\n", nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Control != DefaultControl || cfg.DNSTTL != DefaultDNSTTL || cfg.CheckConcurrency != DefaultCheckConcurrency ||
		cfg.StateWriteRate != DefaultStateWriteRate || cfg.StateWriteBurst != DefaultStateWriteBurst {
		t.Errorf("defaults: %+v", cfg)
	}
	// The defaults operators were promised (issue #14, the README): the
	// socket ExecStop lines name, and a dns_ttl matching the Corefile's
	// default ttl, which a drain waits out.
	if DefaultControl != "/run/servicereg/control.sock" || DefaultDNSTTL != 5*time.Second {
		t.Errorf("DefaultControl %q, DefaultDNSTTL %v; the documented defaults are /run/servicereg/control.sock and 5s", DefaultControl, DefaultDNSTTL)
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
		{name: "valid check", cfg: Config{Host: "h1", Services: []Service{{Name: "web", Checks: Checks{{Kind: healthcheck.KindTCP, Target: "127.0.0.1:80"}}}}}},
		{name: "bad check", cfg: Config{Host: "h1", Services: []Service{{Name: "web", Checks: Checks{{Kind: healthcheck.KindTCP, Target: "db:80"}}}}},
			want: `services[0]: checks[0]: tcp check target "db:80" names host "db"`},
		{name: "bad min_active", cfg: Config{Host: "h1", Services: []Service{{Name: "web", MinActive: -time.Second}}}, want: "min_active -1s"},
		{name: "bad concurrency", cfg: Config{Host: "h1", CheckConcurrency: 5000}, want: "check_concurrency 5000"},
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
	f.Add([]byte("dns_ttl: 0s\nstate_write_rate: 0.25\nservices:\n  - name: web\n    min_active: 1s\n    checks:\n      - http: http://127.0.0.1:8080/\n        interval: 1s\n      - exec: [\"/bin/true\"]\n"))
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
