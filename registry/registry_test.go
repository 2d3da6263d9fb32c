package registry

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	cases := []struct {
		name string
		in   string
		ok   bool
	}{
		{name: "simple", in: "web", ok: true},
		{name: "digits", in: "0web9", ok: true},
		{name: "inner dash", in: "web-1", ok: true},
		{name: "one char", in: "a", ok: true},
		{name: "63 chars", in: strings.Repeat("a", 63), ok: true},
		{name: "64 chars", in: strings.Repeat("a", 64)},
		{name: "empty", in: ""},
		{name: "upper", in: "Web"},
		{name: "leading dash", in: "-web"},
		{name: "trailing dash", in: "web-"},
		{name: "dot", in: "a.b"},
		{name: "underscore", in: "a_b"},
		{name: "slash", in: "a/b"},
		{name: "unicode", in: "wéb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidName(tc.in); got != tc.ok {
				t.Errorf("ValidName(%q) = %v, want %v", tc.in, got, tc.ok)
			}
			err := CheckName("service", tc.in)
			if (err == nil) != tc.ok {
				t.Errorf("CheckName(%q) = %v", tc.in, err)
			}
			if err != nil && !errors.Is(err, ErrBadName) {
				t.Errorf("CheckName error %v does not wrap ErrBadName", err)
			}
		})
	}
}

func TestNewKeys(t *testing.T) {
	cases := []struct {
		name, prefix, want string
		err                bool
	}{
		{name: "default", prefix: "/rollcall", want: "/rollcall"},
		{name: "trailing slash", prefix: "/rollcall/", want: "/rollcall"},
		{name: "nested", prefix: "/a/b", want: "/a/b"},
		{name: "relative", prefix: "rollcall", err: true},
		{name: "root only", prefix: "/", err: true},
		{name: "empty", prefix: "", err: true},
		{name: "space", prefix: "/roll call", err: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewKeys(tc.prefix)
			if tc.err {
				if !errors.Is(err, ErrBadKey) {
					t.Fatalf("NewKeys(%q) err = %v, want ErrBadKey", tc.prefix, err)
				}
				return
			}
			if err != nil || k.Prefix() != tc.want {
				t.Fatalf("NewKeys(%q) = %q, %v; want %q", tc.prefix, k.Prefix(), err, tc.want)
			}
		})
	}
}

func TestKeysRoundTrip(t *testing.T) {
	k := MustKeys("/rollcall")
	cases := []struct {
		name string
		key  string
		want Key
	}{
		{name: "host", key: k.Host("h1"), want: Key{Kind: KindHost, Host: "h1"}},
		{name: "instance", key: k.Instance("h1", "web"), want: Key{Kind: KindInstance, Host: "h1", Service: "web"}},
		{name: "election", key: k.Election("web") + "/694d77c5d1e2a04", want: Key{Kind: KindElection, Service: "web", Lease: 0x694d77c5d1e2a04}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := k.Parse(tc.key)
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tc.key, got, err, tc.want)
			}
		})
	}
	if got, want := k.Host("h1"), "/rollcall/hosts/h1/host"; got != want {
		t.Errorf("Host = %q, want %q", got, want)
	}
	if got, want := k.Instance("h1", "web"), "/rollcall/hosts/h1/services/web"; got != want {
		t.Errorf("Instance = %q, want %q", got, want)
	}
	if !strings.HasPrefix(k.Host("h1"), k.HostDir("h1")) || !strings.HasPrefix(k.Instance("h1", "x"), k.HostDir("h1")) {
		t.Error("host records must live under HostDir, so RBAC on HostDir covers them")
	}
}

func TestParseRejects(t *testing.T) {
	k := MustKeys("/rollcall")
	cases := []struct{ name, key string }{
		{name: "other prefix", key: "/other/hosts/h1/host"},
		{name: "prefix lookalike", key: "/rollcallx/hosts/h1/host"},
		{name: "too shallow", key: "/rollcall/hosts/h1"},
		{name: "too deep", key: "/rollcall/hosts/h1/services/web/extra"},
		{name: "unknown dir", key: "/rollcall/things/h1/host"},
		{name: "bad host", key: "/rollcall/hosts/H1/host"},
		{name: "empty host", key: "/rollcall/hosts//host"},
		{name: "bad service", key: "/rollcall/hosts/h1/services/we_b"},
		{name: "services typo", key: "/rollcall/hosts/h1/service/web"},
		{name: "election not hex", key: "/rollcall/elections/web/xyz"},
		{name: "election zero", key: "/rollcall/elections/web/0"},
		{name: "election too long", key: "/rollcall/elections/web/11111111111111111"},
		{name: "election bad service", key: "/rollcall/elections/Web/1"},
		{name: "election too deep", key: "/rollcall/elections/web/1/2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := k.Parse(tc.key); err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tc.key, got)
			}
		})
	}
}

func TestDecodeHost(t *testing.T) {
	key := Key{Kind: KindHost, Host: "h1"}
	cases := []struct {
		name  string
		value string
		err   string // substring of the error; "" means success
	}{
		{name: "good", value: `{"name":"h1","addrs":{"public":["192.0.2.10","2001:db8::10"],"vpn0":["10.100.0.5"]}}`},
		{name: "unknown field tolerated", value: `{"name":"h1","addrs":{},"future":1}`},
		{name: "not json", value: `hello`, err: "not a JSON record"},
		{name: "empty", value: ``, err: "not a JSON record"},
		{name: "null", value: `null`, err: "host name is empty"},
		{name: "array", value: `[]`, err: "not a JSON record"},
		{name: "wrong type name", value: `{"name":5}`, err: "not a JSON record"},
		{name: "wrong type addrs", value: `{"name":"h1","addrs":["1.2.3.4"]}`, err: "not a JSON record"},
		{name: "bad ip", value: `{"name":"h1","addrs":{"public":["300.1.1.1"]}}`, err: "not a JSON record"},
		{name: "empty ip", value: `{"name":"h1","addrs":{"public":[""]}}`, err: "address is empty"},
		{name: "zoned ip", value: `{"name":"h1","addrs":{"public":["fe80::1%eth0"]}}`, err: "zone"},
		{name: "unspecified", value: `{"name":"h1","addrs":{"public":["0.0.0.0"]}}`, err: "unspecified"},
		{name: "mapped", value: `{"name":"h1","addrs":{"public":["::ffff:1.2.3.4"]}}`, err: "IPv4-mapped"},
		{name: "bad network", value: `{"name":"h1","addrs":{"VPN":["10.0.0.1"]}}`, err: "network name"},
		{name: "name mismatch", value: `{"name":"h2","addrs":{}}`, err: "its key is host"},
		{name: "trailing", value: `{"name":"h1"} {}`, err: "trailing"},
		{name: "stray bracket", value: `{"name":"h1"}]`, err: "trailing"},
		{name: "stray brace", value: `{"name":"h1"}}`, err: "trailing"},
		{name: "trailing white space is fine", value: "{\"name\":\"h1\"} \n"},
		{name: "huge", value: `{"name":"h1","x":"` + strings.Repeat("a", MaxValueSize) + `"}`, err: "at most"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := DecodeHost(key, []byte(tc.value))
			if tc.err == "" {
				if err != nil {
					t.Fatalf("DecodeHost: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeHost = %+v, want error containing %q", h, tc.err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %q does not contain %q", err, tc.err)
			}
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v does not wrap ErrBadRecord", err)
			}
		})
	}
}

func TestDecodeInstance(t *testing.T) {
	key := Key{Kind: KindInstance, Host: "h1", Service: "web"}
	cases := []struct {
		name  string
		value string
		err   string
	}{
		{name: "minimal", value: `{"service":"web","host":"h1"}`},
		{name: "full", value: `{"service":"web","host":"h1","shard":"s1","ports":[{"name":"http","port":8080,"proto":"tcp"}],"addrs":{"public":["192.0.2.1"]}}`},
		{name: "service mismatch", value: `{"service":"api","host":"h1"}`, err: "its key is"},
		{name: "host mismatch", value: `{"service":"web","host":"h2"}`, err: "its key is"},
		{name: "bad shard", value: `{"service":"web","host":"h1","shard":"S1"}`, err: "shard name"},
		{name: "port zero", value: `{"service":"web","host":"h1","ports":[{"name":"http","port":0,"proto":"tcp"}]}`, err: "outside 1-65535"},
		{name: "port too big", value: `{"service":"web","host":"h1","ports":[{"name":"http","port":70000,"proto":"tcp"}]}`, err: "outside 1-65535"},
		{name: "port string", value: `{"service":"web","host":"h1","ports":[{"name":"http","port":"80","proto":"tcp"}]}`, err: "not a JSON record"},
		{name: "bad proto", value: `{"service":"web","host":"h1","ports":[{"name":"http","port":80,"proto":"sctp"}]}`, err: "tcp or udp"},
		{name: "bad port name", value: `{"service":"web","host":"h1","ports":[{"name":"_http","port":80,"proto":"tcp"}]}`, err: "port name"},
		{name: "duplicate port", value: `{"service":"web","host":"h1","ports":[{"name":"http","port":80,"proto":"tcp"},{"name":"http","port":81,"proto":"tcp"}]}`, err: "twice"},
		{name: "bad override addr", value: `{"service":"web","host":"h1","addrs":{"public":["::"]}}`, err: "unspecified"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, err := DecodeInstance(key, []byte(tc.value))
			if tc.err == "" {
				if err != nil {
					t.Fatalf("DecodeInstance: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadRecord) {
				t.Fatalf("DecodeInstance = %+v, %v; want ErrBadRecord containing %q", in, err, tc.err)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	h := &Host{Name: "h1", Addrs: Addrs{
		PublicNetwork: {netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
		"vpn0":        {netip.MustParseAddr("10.100.0.5")},
	}}
	b, err := EncodeHost(h)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"h1","addrs":{"public":["192.0.2.10","2001:db8::10"],"vpn0":["10.100.0.5"]}}`
	if string(b) != want {
		t.Fatalf("EncodeHost = %s\nwant          %s", b, want)
	}
	got, err := DecodeHost(Key{Kind: KindHost, Host: "h1"}, b)
	if err != nil || got.Addrs["vpn0"][0] != h.Addrs["vpn0"][0] {
		t.Fatalf("DecodeHost(EncodeHost) = %+v, %v", got, err)
	}
	in := &Instance{Service: "web", Host: "h1", Shard: "s1", Ports: []Port{{Name: "http", Port: 8080, Proto: "tcp"}}}
	b, err = EncodeInstance(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"service":"web","host":"h1","shard":"s1","ports":[{"name":"http","port":8080,"proto":"tcp"}]}`; string(b) != want {
		t.Fatalf("EncodeInstance = %s\nwant              %s", b, want)
	}
	if _, err := EncodeInstance(&Instance{Service: "Web", Host: "h1"}); !errors.Is(err, ErrBadName) {
		t.Fatalf("EncodeInstance of a bad name: %v, want ErrBadName", err)
	}
}

func TestDecodeCandidate(t *testing.T) {
	if h, err := DecodeCandidate([]byte("h1")); err != nil || h != "h1" {
		t.Fatalf("DecodeCandidate(h1) = %q, %v", h, err)
	}
	for _, bad := range []string{"", "H1", `"h1"`, strings.Repeat("a", 64), "h1\n"} {
		if _, err := DecodeCandidate([]byte(bad)); !errors.Is(err, ErrBadRecord) {
			t.Errorf("DecodeCandidate(%q) = %v, want ErrBadRecord", bad, err)
		}
	}
}

// TestDecodeReasons checks the reason every reader counts a skipped key or
// value by: it comes with the error, whatever wraps it.
func TestDecodeReasons(t *testing.T) {
	k := MustKeys("/rollcall")
	decode := func(key, value string) error {
		pk, err := k.Parse(key)
		if err != nil {
			return fmt.Errorf("wrapped: %w", err)
		}
		switch pk.Kind {
		case KindHost:
			_, err = DecodeHost(pk, []byte(value))
		case KindInstance:
			_, err = DecodeInstance(pk, []byte(value))
		case KindElection:
			_, err = DecodeCandidate([]byte(value))
		}
		return err
	}
	for _, tc := range []struct {
		name, key, value string
		want             Reason
	}{
		{name: "bad depth", key: "/rollcall/hosts/h1", want: ReasonKey},
		{name: "bad name in key", key: "/rollcall/hosts/H1/host", want: ReasonKey},
		{name: "bad lease", key: "/rollcall/elections/web/zz", want: ReasonKey},
		{name: "host too large", key: "/rollcall/hosts/h1/host", value: strings.Repeat(" ", MaxValueSize+1), want: ReasonTooLarge},
		{name: "instance too large", key: "/rollcall/hosts/h1/services/web", value: strings.Repeat("x", MaxValueSize+1), want: ReasonTooLarge},
		{name: "not JSON", key: "/rollcall/hosts/h1/host", value: "nope", want: ReasonRecord},
		{name: "trailing data", key: "/rollcall/hosts/h1/services/web", value: `{"service":"web","host":"h1"}]`, want: ReasonRecord},
		{name: "invalid record", key: "/rollcall/hosts/h1/services/web", value: `{"service":"web","host":"h1","shard":"S"}`, want: ReasonRecord},
		{name: "host mismatch", key: "/rollcall/hosts/h1/host", value: `{"name":"h2"}`, want: ReasonMismatch},
		{name: "instance mismatch", key: "/rollcall/hosts/h1/services/web", value: `{"service":"api","host":"h1"}`, want: ReasonMismatch},
		{name: "candidate", key: "/rollcall/elections/web/1", value: "Not A Host", want: ReasonCandidate},
		{name: "long candidate", key: "/rollcall/elections/web/1", value: strings.Repeat("a", 64), want: ReasonCandidate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := decode(tc.key, tc.value)
			if got, ok := ReasonOf(err); !ok || got != tc.want {
				t.Fatalf("ReasonOf(%v) = %q, %v; want %q", err, got, ok, tc.want)
			}
		})
	}
	if _, ok := ReasonOf(errors.New("other")); ok {
		t.Fatal("ReasonOf of an error that did not come from decoding says it did")
	}
}

// TestValueChecks checks the single-value checks the agent's config shares
// with the records: each says what is wrong without its class (Problem), and
// the class stays for errors.Is.
func TestValueChecks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		class error
		want  string // Problem, exactly
	}{
		{name: "name", err: CheckName("service", "Web"), class: ErrBadName,
			want: `service name "Web" must be a lower-case DNS label: a-z, 0-9 and '-', not starting or ending with '-'`},
		{name: "port number", err: CheckPortNumber(70000), class: ErrBadRecord, want: "70000 is outside 1-65535"},
		{name: "proto", err: CheckProto("sctp"), class: ErrBadRecord, want: `"sctp" must be tcp or udp`},
		{name: "not an address", err: second(ParseAddr("192.0.2.300")), class: ErrBadRecord, want: `"192.0.2.300" is not an IP address`},
		{name: "zoned address", err: second(ParseAddr("fe80::1%eth0")), class: ErrBadRecord, want: "address fe80::1%eth0 has a zone, which other hosts cannot use"},
		{name: "empty address", err: CheckAddr(netip.Addr{}), class: ErrBadRecord, want: "address is empty"},
		{name: "mapped address", err: CheckAddr(netip.MustParseAddr("::ffff:1.2.3.4")), class: ErrBadRecord, want: "address ::ffff:1.2.3.4 is IPv4-mapped IPv6: write 1.2.3.4"},
		{name: "not a CIDR", err: second(ParseCIDR("10.300.0.0/16")), class: ErrBadNetwork, want: `"10.300.0.0/16" is not a CIDR such as 10.100.0.0/16 or fd00::/64`},
		{name: "host bits, as written", err: second(ParseCIDR("FD00::1/64")), class: ErrBadNetwork, want: `"FD00::1/64" has host bits set: write fd00::/64`},
		{name: "host bits", err: CheckCIDR(netip.MustParsePrefix("10.100.0.1/16")), class: ErrBadNetwork, want: `"10.100.0.1/16" has host bits set: write 10.100.0.0/16`},
		{name: "port in a record", err: Port{Name: "http", Port: 0, Proto: "tcp"}.Validate(), class: ErrBadRecord, want: "port http number 0 is outside 1-65535"},
		{name: "port name in a record", err: Port{Name: "_http", Port: 80, Proto: "tcp"}.Validate(), class: ErrBadName,
			want: `port name "_http" must be a lower-case DNS label: a-z, 0-9 and '-', not starting or ending with '-'`},
		{name: "ports twice", err: ValidatePorts([]Port{{"http", 80, "tcp"}, {"http", 81, "tcp"}}), class: ErrBadRecord, want: "port http/tcp is listed twice"},
		{name: "prefix", err: second(NewKeys("rollcall")), class: ErrBadKey, want: "prefix \"rollcall\" must start with '/' and name a folder, e.g. /rollcall"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.class) {
				t.Fatalf("%v does not wrap %v", tc.err, tc.class)
			}
			if got := Problem(tc.err); got != tc.want {
				t.Fatalf("Problem = %q\nwant      %q", got, tc.want)
			}
		})
	}
	for _, ok := range []error{CheckPortNumber(1), CheckPortNumber(65535), CheckProto("udp"), CheckAddr(netip.MustParseAddr("2001:db8::1")),
		second(ParseCIDR("10.0.0.0/8")), ValidatePorts([]Port{{"http", 80, "tcp"}, {"http", 80, "udp"}})} {
		if ok != nil {
			t.Errorf("valid value refused: %v", ok)
		}
	}
}

func second[T any](_ T, err error) error { return err }
