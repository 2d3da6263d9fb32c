package inspect

import (
	"reflect"
	"strings"
	"testing"

	"github.com/rollcall/rollcall/registry"
)

var testKeys = registry.MustKeys("/rollcall")

func ptr(v int64) *int64 { return &v }

func TestBuild(t *testing.T) {
	tests := []struct {
		name    string
		kvs     []KV
		ttls    map[int64]LeaseTTL
		want    []Service
		hosts   []Host
		skipped []string // keys
	}{
		{
			name:  "empty",
			want:  []Service{},
			hosts: []Host{},
		},
		{
			name: "instance takes its host's addresses and lease TTL",
			kvs: []KV{
				{Key: "/rollcall/hosts/h1/services/web", Value: []byte(`{"service":"web","host":"h1","shard":"s1","ports":[{"name":"http","port":8080,"proto":"tcp"}]}`), Lease: 0x10},
				{Key: "/rollcall/hosts/h1/host", Value: []byte(`{"name":"h1","addrs":{"public":["192.0.2.1"],"vpn0":["10.100.0.1"]}}`), Lease: 0x10},
			},
			ttls: map[int64]LeaseTTL{0x10: {TTL: 7, Granted: 10}},
			want: []Service{{
				Name: "web",
				Instances: []Instance{{
					Host: "h1", Shard: "s1",
					Addrs:     map[string][]string{"public": {"192.0.2.1"}, "vpn0": {"10.100.0.1"}},
					AddrsFrom: "host",
					Ports:     []registry.Port{{Name: "http", Port: 8080, Proto: "tcp"}},
					Lease:     "10", TTL: ptr(7),
					State: "passing", InService: true,
				}},
			}},
			hosts: []Host{{
				Name: "h1", Record: true,
				Addrs:    map[string][]string{"public": {"192.0.2.1"}, "vpn0": {"10.100.0.1"}},
				Services: []string{"web"}, Lease: "10", TTL: ptr(7), GrantedTTL: 10, lease: 0x10,
			}},
		},
		{
			name: "instance addresses override the host's; missing host record",
			kvs: []KV{
				{Key: "/rollcall/hosts/h2/services/db", Value: []byte(`{"service":"db","host":"h2","addrs":{"public":["2001:db8::2"]}}`)},
				{Key: "/rollcall/hosts/h3/services/db", Value: []byte(`{"service":"db","host":"h3"}`)},
			},
			want: []Service{{
				Name: "db",
				Instances: []Instance{
					{Host: "h2", Addrs: map[string][]string{"public": {"2001:db8::2"}}, AddrsFrom: "instance", Ports: []registry.Port{}, State: "passing", InService: true},
					{Host: "h3", Addrs: map[string][]string{}, AddrsFrom: "none", Ports: []registry.Port{}, State: "passing", InService: true},
				},
			}},
			hosts: []Host{
				{Name: "h2", Addrs: map[string][]string{}, Services: []string{"db"}},
				{Name: "h3", Addrs: map[string][]string{}, Services: []string{"db"}},
			},
		},
		{
			name: "master is the lowest create revision; others stand by",
			kvs: []KV{
				{Key: "/rollcall/hosts/a/services/web", Value: []byte(`{"service":"web","host":"a"}`), Lease: 0xa},
				{Key: "/rollcall/hosts/b/services/web", Value: []byte(`{"service":"web","host":"b"}`), Lease: 0xb},
				{Key: "/rollcall/elections/web/a", Value: []byte("a"), Lease: 0xa, CreateRevision: 9},
				{Key: "/rollcall/elections/web/b", Value: []byte("b"), Lease: 0xb, CreateRevision: 5},
			},
			want: []Service{{
				Name: "web", Candidates: 2,
				Master: &Master{Host: "b", Term: 5, Lease: "b"},
				Instances: []Instance{
					{Host: "a", Addrs: map[string][]string{}, AddrsFrom: "none", Ports: []registry.Port{}, Lease: "a", Role: "standby", State: "passing", InService: true},
					{Host: "b", Addrs: map[string][]string{}, AddrsFrom: "none", Ports: []registry.Port{}, Lease: "b", Role: "master", State: "passing", InService: true},
				},
			}},
			hosts: []Host{
				{Name: "a", Addrs: map[string][]string{}, Services: []string{"web"}, Lease: "a", lease: 0xa},
				{Name: "b", Addrs: map[string][]string{}, Services: []string{"web"}, Lease: "b", lease: 0xb},
			},
		},
		{
			name: "election without instances; malformed winner keeps its term",
			kvs: []KV{
				{Key: "/rollcall/elections/cron/1f", Value: []byte("Not A Host"), Lease: 0x1f, CreateRevision: 3},
				{Key: "/rollcall/elections/cron/2f", Value: []byte("h9"), Lease: 0x2f, CreateRevision: 4},
			},
			want: []Service{{
				Name: "cron", Candidates: 2, Instances: []Instance{},
				Master: &Master{Host: "", Term: 3, Lease: "1f"},
			}},
			hosts:   []Host{},
			skipped: []string{"/rollcall/elections/cron/1f"},
		},
		{
			name: "malformed keys and values are skipped, the rest is kept",
			kvs: []KV{
				{Key: "/rollcall/hosts/h1/host", Value: []byte(`{"name":"h1","addrs":{"public":["192.0.2.1"]}}`)},
				{Key: "/rollcall/hosts/h1/services/web", Value: []byte(`{"service":"web","host":"h1"}`)},
				{Key: "/rollcall/hosts/h1/services/bad", Value: []byte(`{not json`)},
				{Key: "/rollcall/hosts/h1/services/other", Value: []byte(`{"service":"web","host":"h1"}`)},
				{Key: "/rollcall/hosts/H1/host", Value: []byte(`{"name":"H1","addrs":{}}`)},
				{Key: "/rollcall/hosts/h2/host", Value: []byte(`{"name":"h2","addrs":{"public":["not-an-ip"]}}`)},
				{Key: "/rollcall/something/else", Value: []byte(`x`)},
				{Key: "/rollcall/elections/web/zz", Value: []byte(`h1`)},
			},
			want: []Service{{
				Name: "web",
				Instances: []Instance{{
					Host: "h1", Addrs: map[string][]string{"public": {"192.0.2.1"}}, AddrsFrom: "host", Ports: []registry.Port{},
					State: "passing", InService: true,
				}},
			}},
			hosts: []Host{{Name: "h1", Record: true, Addrs: map[string][]string{"public": {"192.0.2.1"}}, Services: []string{"web"}}},
			skipped: []string{
				"/rollcall/elections/web/zz",
				"/rollcall/hosts/H1/host",
				"/rollcall/hosts/h1/services/bad",
				"/rollcall/hosts/h1/services/other",
				"/rollcall/hosts/h2/host",
				"/rollcall/something/else",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Build(testKeys, 42, tc.kvs, tc.ttls)
			if s.Revision != 42 || s.Prefix != "/rollcall" {
				t.Errorf("revision %d prefix %q, want 42 /rollcall", s.Revision, s.Prefix)
			}
			if !reflect.DeepEqual(s.Services, tc.want) {
				t.Errorf("services:\n got %+v\nwant %+v", s.Services, tc.want)
			}
			if !reflect.DeepEqual(s.Hosts, tc.hosts) {
				t.Errorf("hosts:\n got %+v\nwant %+v", s.Hosts, tc.hosts)
			}
			var got []string
			for _, sk := range s.Skipped {
				got = append(got, sk.Key)
				if sk.Reason == "" {
					t.Errorf("skipped %s without a reason", sk.Key)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.skipped, " ") {
				t.Errorf("skipped %v, want %v", got, tc.skipped)
			}
		})
	}
}

func TestOnly(t *testing.T) {
	kvs := []KV{
		{Key: "/rollcall/hosts/h1/services/web", Value: []byte(`{"service":"web","host":"h1"}`)},
		{Key: "/rollcall/hosts/h1/services/db", Value: []byte(`{"service":"db","host":"h1"}`)},
	}
	tests := []struct {
		name        string
		only        []string
		wantKept    []string
		wantMissing []string
	}{
		{name: "no names keeps all", only: nil, wantKept: []string{"db", "web"}},
		{name: "one name", only: []string{"web"}, wantKept: []string{"web"}},
		{name: "a missing name, twice", only: []string{"cache", "db", "cache"}, wantKept: []string{"db"}, wantMissing: []string{"cache"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Build(testKeys, 1, kvs, nil)
			missing := s.Only(tc.only)
			var kept []string
			for _, svc := range s.Services {
				kept = append(kept, svc.Name)
			}
			if !reflect.DeepEqual(kept, tc.wantKept) || !reflect.DeepEqual(missing, tc.wantMissing) {
				t.Errorf("kept %v missing %v, want %v %v", kept, missing, tc.wantKept, tc.wantMissing)
			}
		})
	}
}

func TestLeases(t *testing.T) {
	got := Leases([]KV{{Lease: 3}, {Lease: 0}, {Lease: 1}, {Lease: 3}})
	if !reflect.DeepEqual(got, []int64{1, 3}) {
		t.Fatalf("Leases = %v, want [1 3]", got)
	}
}

// FuzzBuild feeds arbitrary keys and values to Build: whatever etcd holds,
// inspecting it never panics and every key is either used or skipped.
func FuzzBuild(f *testing.F) {
	f.Add("/rollcall/hosts/h1/host", []byte(`{"name":"h1","addrs":{"public":["192.0.2.1"]}}`), int64(1))
	f.Add("/rollcall/hosts/h1/services/web", []byte(`{"service":"web","host":"h1"}`), int64(2))
	f.Add("/rollcall/elections/web/1", []byte(`h1`), int64(3))
	f.Add("/rollcall/hosts//host", []byte(`{}`), int64(0))
	f.Fuzz(func(t *testing.T, key string, value []byte, rev int64) {
		s := Build(testKeys, rev, []KV{{Key: key, Value: value, Lease: rev, CreateRevision: rev}}, nil)
		c := s.Counts()
		if c.Instances+c.Skipped+c.Candidates+len(s.Hosts) == 0 {
			t.Fatalf("key %q neither used nor skipped", key)
		}
		_ = RenderLs(&strings.Builder{}, s, FormatTable)
		_ = RenderStatus(&strings.Builder{}, s, FormatTable)
	})
}
