package health

import (
	"strings"
	"testing"
	"time"
)

func TestSpecDefaults(t *testing.T) {
	s := Spec{Kind: KindTCP, Target: "127.0.0.1:80"}
	s.SetDefaults()
	if s.Interval != DefaultInterval || s.Timeout != DefaultTimeout || s.Rise != DefaultRise || s.Fall != DefaultFall {
		t.Fatalf("defaults: %+v", s)
	}
	// The documented defaults (servicereg/README.md, issue #14).
	if DefaultInterval != 5*time.Second || DefaultTimeout != 2*time.Second || DefaultRise != 2 || DefaultFall != 3 {
		t.Fatalf("defaults interval %v timeout %v rise %d fall %d; documented: 5s, 2s, 2, 3", DefaultInterval, DefaultTimeout, DefaultRise, DefaultFall)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	// A short interval without a timeout gets half of it, not a default it
	// would refuse.
	s = Spec{Kind: KindTCP, Target: "127.0.0.1:80", Interval: time.Second}
	s.SetDefaults()
	if s.Timeout != 500*time.Millisecond {
		t.Fatalf("timeout for a 1s interval: %v", s.Timeout)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSpecValidate(t *testing.T) {
	ok := func(s Spec) Spec { s.SetDefaults(); return s }
	for _, s := range []Spec{
		ok(Spec{Kind: KindHTTP, Target: "http://127.0.0.1:8080/ready"}),
		ok(Spec{Kind: KindHTTP, Target: "https://[::1]/health?full=1"}),
		ok(Spec{Kind: KindTCP, Target: "[fd00::1]:5432"}),
		ok(Spec{Kind: KindGRPC, Target: "127.0.0.1:9090"}),
		ok(Spec{Kind: KindGRPC, Target: "127.0.0.1:9090/grpc.health.v1.Health"}),
		ok(Spec{Kind: KindExec, Argv: []string{"/usr/local/bin/check-db", "--quick"}}),
		ok(Spec{Kind: KindExec, Argv: []string{"./check"}}),
		ok(Spec{Kind: KindTCP, Target: "127.0.0.1:1", Interval: MinInterval, Timeout: MinInterval / 2, Rise: 1, Fall: MaxRiseFall}),
	} {
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, tc := range []struct {
		spec Spec
		want string // in the message: what to write instead
	}{
		{Spec{Kind: "ping", Target: "127.0.0.1"}, "write one of http, tcp, grpc, exec"},
		{Spec{Kind: KindHTTP, Target: "http://localhost:8080/"}, `names host "localhost": write an IP address such as 127.0.0.1: checks never resolve names`},
		{Spec{Kind: KindHTTP, Target: "ftp://127.0.0.1/"}, "must start with http:// or https://"},
		{Spec{Kind: KindHTTP, Target: "127.0.0.1:8080/ready"}, "must start with http://"},
		{Spec{Kind: KindHTTP, Target: "http://u:p@127.0.0.1/"}, "user and password"},
		{Spec{Kind: KindHTTP, Target: "http://127.0.0.1:0/"}, "not a number from 1 to 65535"},
		{Spec{Kind: KindHTTP, Target: "http://127.0.0.1:99999/"}, "not a number from 1 to 65535"},
		{Spec{Kind: KindHTTP, Target: "http://%zz/"}, "does not parse"},
		{Spec{Kind: KindTCP, Target: "127.0.0.1"}, "is not IP:port: write an address such as 127.0.0.1:8080"},
		{Spec{Kind: KindTCP, Target: "db.internal:5432"}, "write an IP address such as 127.0.0.1"},
		{Spec{Kind: KindTCP, Target: "::1:80"}, "[::1]:8080 for IPv6"},
		{Spec{Kind: KindTCP, Target: "127.0.0.1:http"}, "not a number from 1 to 65535"},
		{Spec{Kind: KindTCP, Target: "[fe80::1%eth0]:80"}, "zone"},
		{Spec{Kind: KindGRPC, Target: "127.0.0.1:9090/a b"}, "IP:port/package.Service"},
		{Spec{Kind: KindGRPC, Target: "grpc.local:9090"}, "write an IP address"},
		{Spec{Kind: KindExec}, `write exec: ["/usr/local/bin/check-db"]`},
		{Spec{Kind: KindExec, Argv: []string{""}}, "exec needs a program"},
		{Spec{Kind: KindExec, Argv: []string{"check-db"}}, "write its path, such as /usr/bin/check-db"},
		{Spec{Kind: KindTCP, Target: "127.0.0.1:80", Interval: 5 * time.Second, Timeout: 5 * time.Second}, "timeout 5s must be shorter than interval 5s: write timeout: 2s or interval: 10s"},
		{Spec{Kind: KindTCP, Target: "127.0.0.1:80", Interval: 10 * time.Millisecond}, "write a duration from 100ms to 1h0m0s"},
		{Spec{Kind: KindTCP, Target: "127.0.0.1:80", Interval: 2 * time.Hour}, "interval 2h0m0s is out of range"},
		{Spec{Kind: KindTCP, Target: "127.0.0.1:80", Timeout: -time.Second}, "timeout -1s must be positive"},
		{Spec{Kind: KindTCP, Target: "127.0.0.1:80", Rise: -1}, "rise -1 is out of range: write a count from 1 to 100"},
		{Spec{Kind: KindTCP, Target: "127.0.0.1:80", Fall: 1000}, "fall 1000 is out of range"},
	} {
		s := tc.spec
		s.SetDefaults()
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to say %q", tc.spec, err, tc.want)
		}
	}
}

func TestSpecStringEqual(t *testing.T) {
	a := Spec{Kind: KindExec, Argv: []string{"/bin/check", "-q"}, Source: "a.yml:3"}
	a.SetDefaults()
	if got := a.String(); got != "exec /bin/check -q" {
		t.Errorf("String: %q", got)
	}
	if got := (Spec{Kind: KindHTTP, Target: "http://127.0.0.1/"}).String(); got != "http http://127.0.0.1/" {
		t.Errorf("String: %q", got)
	}
	b := a
	b.Argv = []string{"/bin/check", "-q"}
	b.Source = "b.yml:9"
	if !a.Equal(b) {
		t.Error("Equal: the same check from another line must be equal (Source ignored)")
	}
	for _, change := range []func(*Spec){
		func(s *Spec) { s.Argv = []string{"/bin/check"} },
		func(s *Spec) { s.Interval++ },
		func(s *Spec) { s.Timeout++ },
		func(s *Spec) { s.Rise++ },
		func(s *Spec) { s.Fall++ },
		func(s *Spec) { s.Kind = KindTCP },
	} {
		c := a
		c.Argv = append([]string(nil), a.Argv...)
		change(&c)
		if a.Equal(c) {
			t.Errorf("Equal: %+v and %+v are different checks", a, c)
		}
	}
}
