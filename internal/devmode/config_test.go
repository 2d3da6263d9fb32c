package devmode

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" for none
		check   func(t *testing.T, c Config)
	}{
		{
			name: "zero value gets the documented defaults",
			check: func(t *testing.T, c Config) {
				if c.DataDir != ".rollcall-dev" || c.ClientURL != "http://127.0.0.1:2379" || c.DNSAddr != "127.0.0.1:1053" ||
					c.Zone != "infra.example.com." || c.Prefix != "/rollcall" || c.TTL != 10*time.Second {
					t.Errorf("defaults: %+v", c)
				}
			},
		},
		{name: "zone without the final dot", cfg: Config{Zone: "dev.test"}, check: func(t *testing.T, c Config) {
			if c.Zone != "dev.test." {
				t.Errorf("zone %q, want dev.test.", c.Zone)
			}
		}},
		{name: "TLS URL", cfg: Config{ClientURL: "https://127.0.0.1:2379"}, wantErr: "must be http://IP:PORT"},
		{name: "host name in URL", cfg: Config{ClientURL: "http://localhost:2379"}, wantErr: "IP address"},
		{name: "no port", cfg: Config{PeerURL: "http://127.0.0.1"}, wantErr: "peer URL"},
		{name: "DNS address without port", cfg: Config{DNSAddr: "127.0.0.1"}, wantErr: "IP:PORT"},
		{name: "DNS port 0", cfg: Config{DNSAddr: "127.0.0.1:0"}, wantErr: "other than 0"},
		{name: "same client and peer URL", cfg: Config{ClientURL: "http://127.0.0.1:5", PeerURL: "http://127.0.0.1:5"}, wantErr: "different ports"},
		{name: "bad prefix", cfg: Config{Prefix: "rollcall"}, wantErr: "must start with '/'"},
		{name: "bad host", cfg: Config{Host: "My_Host"}, wantErr: "host name"},
		{name: "short TTL", cfg: Config{TTL: time.Second}, wantErr: "too short"},
		{name: "HTTP address without port", cfg: Config{HTTPAddr: "127.0.0.1"}, wantErr: "HTTP address"},
		{name: "HTTP on the DNS address", cfg: Config{HTTPAddr: "127.0.0.1:5353", DNSAddr: "127.0.0.1:5353"}, wantErr: "different ports"},
		{name: "HTTP off", cfg: Config{HTTPAddr: HTTPOff}, check: func(t *testing.T, c Config) {
			for _, u := range c.portUses() {
				if strings.Contains(u.what, "HTTP") {
					t.Errorf("HTTP off, yet its port is checked: %+v", u)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.cfg.withDefaults()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestCorefileAndBanner(t *testing.T) {
	c, err := Config{DNSAddr: "127.0.0.1:5353", ClientURL: "http://127.0.0.1:4001", Self: "bin/rollcall"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	wantCorefile := `infra.example.com.:5353 {
    bind 127.0.0.1
    errors
    rollcall infra.example.com. {
        endpoint http://127.0.0.1:4001
        prefix /rollcall
        ttl 5
        http 127.0.0.1:8053
    }
}
`
	if got := c.Corefile(); got != wantCorefile {
		t.Errorf("Corefile:\n%s\nwant:\n%s", got, wantCorefile)
	}
	banner := c.Banner("box")
	for _, want := range []string{
		"dig @127.0.0.1 -p 5353 demo.infra.example.com\n",
		"etcdctl --endpoints http://127.0.0.1:4001 get --prefix /rollcall/\n",
		"bin/rollcall ls -endpoints http://127.0.0.1:4001\n",
		"Status page: http://127.0.0.1:8053/\n",
		"curl 'http://127.0.0.1:8053/v1/services/demo?pretty'\n",
		`host "box"`,
		"Ctrl-C",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	off, _ := Config{HTTPAddr: HTTPOff}.withDefaults()
	if strings.Contains(off.Corefile(), "        http ") || strings.Contains(off.Banner("box"), "Status page") {
		t.Errorf("HTTP off, yet:\n%s\n%s", off.Corefile(), off.Banner("box"))
	}
	def, _ := Config{}.withDefaults()
	if b := def.Banner("box"); !strings.Contains(b, "  rollcall ls\n") {
		t.Errorf("with the default endpoint, ls needs no flags:\n%s", b)
	}
}

func TestCheckPorts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().String()
	_, port, _ := net.SplitHostPort(taken)

	err = checkPorts([]portUse{{netw: "tcp", addr: taken, what: "etcd client", flag: "-etcd-port PORT"}})
	if !errors.Is(err, ErrPortTaken) {
		t.Fatalf("err = %v, want ErrPortTaken", err)
	}
	for _, want := range []string{"port " + port, "etcd client", "-etcd-port PORT", "address already in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	l.Close()
	if err := checkPorts([]portUse{{netw: "tcp", addr: taken}, {netw: "udp", addr: taken}}); err != nil {
		t.Errorf("free port: %v", err)
	}
}

func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDataDir(dir, "-data-dir DIR")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir, "-data-dir DIR"); err == nil || !strings.Contains(err.Error(), "in use by another rollcall dev") {
		t.Errorf("second lock: %v, want an in-use error", err)
	}
	unlock()
	unlock2, err := lockDataDir(dir, "-data-dir DIR")
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}
