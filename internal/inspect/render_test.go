package inspect

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// sample is a registry with two services, a master, a host without a record
// and one malformed key.
func sample() *Snapshot {
	return Build(testKeys, 77, []KV{
		{Key: "/rollcall/hosts/h1/host", Value: []byte(`{"name":"h1","addrs":{"vpn0":["10.100.0.1"],"public":["192.0.2.1","2001:db8::1"]}}`), Lease: 0x1a},
		{Key: "/rollcall/hosts/h1/services/web", Value: []byte(`{"service":"web","host":"h1","shard":"s1","ports":[{"name":"http","port":8080,"proto":"tcp"},{"name":"dns","port":53,"proto":"udp"}]}`), Lease: 0x1a},
		{Key: "/rollcall/hosts/h2/services/web", Value: []byte(`{"service":"web","host":"h2"}`), Lease: 0x2b},
		{Key: "/rollcall/hosts/h1/services/demo", Value: []byte(`{"service":"demo","host":"h1"}`)},
		{Key: "/rollcall/elections/web/1a", Value: []byte("h1"), Lease: 0x1a, CreateRevision: 12},
		{Key: "/rollcall/elections/web/2b", Value: []byte("h2"), Lease: 0x2b, CreateRevision: 30},
		{Key: "/rollcall/hosts/h3/services/Bad", Value: []byte(`{}`)},
	}, map[int64]LeaseTTL{0x1a: {TTL: 8, Granted: 10}, 0x2b: {TTL: -1, Granted: 0}})
}

func TestRenderTable(t *testing.T) {
	tests := []struct {
		name   string
		render func(*strings.Builder, *Snapshot) error
		snap   *Snapshot
		want   string
	}{
		{
			name:   "ls",
			render: func(b *strings.Builder, s *Snapshot) error { return RenderLs(b, s, FormatTable) },
			snap:   sample(),
			want: `SERVICE  HOST  SHARD  STATE    ADDRESSES                                     PORTS                     ROLE              TTL
demo     h1    -      passing  public=192.0.2.1,2001:db8::1 vpn0=10.100.0.1  -                         -                 none
web      h1    s1     passing  public=192.0.2.1,2001:db8::1 vpn0=10.100.0.1  http:8080/tcp,dns:53/udp  master (term 12)  8s
web      h2    -      passing  (none: no host record)                        -                         standby           expired
`,
		},
		{
			name:   "ls with a master that has no instance",
			render: func(b *strings.Builder, s *Snapshot) error { return RenderLs(b, s, FormatTable) },
			snap: Build(testKeys, 5, []KV{
				{Key: "/rollcall/hosts/h1/services/web", Value: []byte(`{"service":"web","host":"h1","addrs":{"public":["192.0.2.1"]}}`)},
				{Key: "/rollcall/elections/web/9", Value: []byte("ops"), Lease: 9, CreateRevision: 4},
				{Key: "/rollcall/elections/cron/a", Value: []byte("h1"), Lease: 10, CreateRevision: 3},
			}, nil),
			want: `SERVICE  HOST  SHARD  STATE    ADDRESSES         PORTS  ROLE                          TTL
cron     -     -      -        -                 -      master h1 (term 3)            -
web      h1    -      passing  public=192.0.2.1  -      -                             none
web      ops   -      -        -                 -      master (term 4), no instance  -
`,
		},
		{
			name:   "ls of an empty registry",
			render: func(b *strings.Builder, s *Snapshot) error { return RenderLs(b, s, FormatTable) },
			snap:   Build(testKeys, 3, nil, nil),
			want:   "no services registered under /rollcall/ (revision 3)\n",
		},
		{
			name:   "status",
			render: func(b *strings.Builder, s *Snapshot) error { return RenderStatus(b, s, FormatTable) },
			snap:   sample(),
			want: `HOST  LEASE  TTL      SERVICES  ADDRESSES
h1    1a     8s/10s   demo,web  public=192.0.2.1,2001:db8::1 vpn0=10.100.0.1
h2    2b     expired  web       (no valid host record)

SERVICE  MASTER  TERM  LEASE  CANDIDATES
web      h1      12    1a     2

revision 77: 2 services, 3 instances (3 passing), 2 hosts, 2 election candidates; malformed keys skipped: 1

SKIPPED KEY                      REASON
/rollcall/hosts/h3/services/Bad  key "/rollcall/hosts/h3/services/Bad": registry: bad name: service name "Bad" must be a lower-case DNS label: a-z, 0-9 and '-', not starting or ending with '-'
`,
		},
		{
			name:   "status of an empty registry",
			render: func(b *strings.Builder, s *Snapshot) error { return RenderStatus(b, s, FormatTable) },
			snap:   Build(testKeys, 3, nil, nil),
			want: `no hosts registered under /rollcall/

no elections

revision 3: 0 services, 0 instances, 0 hosts, 0 election candidates; malformed keys skipped: 0
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := tc.render(&b, tc.snap); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

// TestRenderJSON pins the JSON field names, which scripts depend on.
func TestRenderJSON(t *testing.T) {
	tests := []struct {
		name   string
		render func(*strings.Builder, *Snapshot) error
		want   string
	}{
		{
			name:   "ls",
			render: func(b *strings.Builder, s *Snapshot) error { return RenderLs(b, s, FormatJSON) },
			want: `{"prefix":"/rollcall","revision":77,"services":[
			 {"name":"demo","candidates":0,"instances":[
			  {"host":"h1","addrs":{"public":["192.0.2.1","2001:db8::1"],"vpn0":["10.100.0.1"]},"addrs_from":"host","ports":[],"state":"passing","in_service":true}]},
			 {"name":"web","candidates":2,"master":{"host":"h1","term":12,"lease":"1a"},"instances":[
			  {"host":"h1","shard":"s1","addrs":{"public":["192.0.2.1","2001:db8::1"],"vpn0":["10.100.0.1"]},"addrs_from":"host",
			   "ports":[{"name":"http","port":8080,"proto":"tcp"},{"name":"dns","port":53,"proto":"udp"}],"lease":"1a","ttl":8,"role":"master","state":"passing","in_service":true},
			  {"host":"h2","addrs":{},"addrs_from":"none","ports":[],"lease":"2b","ttl":-1,"role":"standby","state":"passing","in_service":true}]}]}`,
		},
		{
			name:   "status",
			render: func(b *strings.Builder, s *Snapshot) error { return RenderStatus(b, s, FormatJSON) },
			want: `{"prefix":"/rollcall","revision":77,
			 "hosts":[
			  {"name":"h1","record":true,"addrs":{"public":["192.0.2.1","2001:db8::1"],"vpn0":["10.100.0.1"]},"services":["demo","web"],"lease":"1a","ttl":8,"granted_ttl":10},
			  {"name":"h2","record":false,"addrs":{},"services":["web"],"lease":"2b","ttl":-1}],
			 "masters":[{"service":"web","host":"h1","term":12,"lease":"1a","candidates":2}],
			 "instances":[
			  {"service":"demo","host":"h1","state":"passing","in_service":true},
			  {"service":"web","host":"h1","state":"passing","in_service":true},
			  {"service":"web","host":"h2","state":"passing","in_service":true}],
			 "maintenance":[],
			 "counts":{"services":2,"instances":3,"hosts":2,"candidates":2,"skipped":1,"states":{"passing":3},"failing_open":0},
			 "skipped":[{"key":"/rollcall/hosts/h3/services/Bad","reason":"key \"/rollcall/hosts/h3/services/Bad\": registry: bad name: service name \"Bad\" must be a lower-case DNS label: a-z, 0-9 and '-', not starting or ending with '-'"}]}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := tc.render(&b, sample()); err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal([]byte(b.String()), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, b.String())
			}
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatalf("bad test JSON: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{in: "table", want: FormatTable},
		{in: "json", want: FormatJSON},
		{in: "yaml", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseFormat(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseFormat(%q) = %q, %v", tc.in, got, err)
			}
		})
	}
}
