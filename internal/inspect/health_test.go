package inspect

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// healthNow is when healthSample is read: 2023-11-14T22:13:20Z.
var healthNow = time.Unix(1700000000, 0)

// healthSample has an instance in each state, a service failing open, a
// host in maintenance, an instance whose maintenance has ended, and a
// malformed maintenance record.
func healthSample() *Snapshot {
	inst := func(host, svc, extra string) KV {
		return KV{Key: "/rollcall/hosts/" + host + "/services/" + svc, Value: []byte(`{"service":"` + svc + `","host":"` + host + `","addrs":{"public":["192.0.2.1"]}` + extra + `}`)}
	}
	return BuildAt(testKeys, 9, []KV{
		inst("h1", "web", `,"state":"passing","since":1699999000`),
		inst("h2", "web", `,"state":"warning","since":1699999700`),
		inst("h3", "web", `,"state":"critical","since":1699996400,"reason":"http: connection refused"`),
		inst("h4", "web", `,"state":"draining","since":1699999990`),
		inst("h5", "web", ``),
		inst("h1", "db", `,"state":"critical","since":1699999940,"reason":"disk full"`),
		inst("h6", "db", `,"state":"critical"`),
		{Key: "/rollcall/maintenance/h5", Value: []byte(`{"reason":"kernel upgrade","who":"ops@admin1","until":1700003600}`)},
		{Key: "/rollcall/maintenance/h1/web", Value: []byte(`{"reason":"disk swap","until":1699999000}`)},
		{Key: "/rollcall/maintenance/h6", Value: []byte(`{"who":"no reason"}`)},
	}, nil, healthNow)
}

func TestHealthBuild(t *testing.T) {
	s := healthSample()
	byKey := map[string]Instance{}
	for _, svc := range s.Services {
		for _, in := range svc.Instances {
			byKey[svc.Name+"/"+in.Host] = in
		}
	}
	for key, want := range map[string]struct {
		state     string
		inService bool
	}{
		"web/h1": {"passing", true}, // its maintenance has ended
		"web/h2": {"warning", true},
		"web/h3": {"critical", false},
		"web/h4": {"draining", false},
		"web/h5": {"maintenance", false}, // no state written: passing, but its host is in maintenance
		"db/h1":  {"critical", false},
		"db/h6":  {"critical", false}, // the malformed record holds nothing out
	} {
		in := byKey[key]
		if in.ShownState() != want.state || in.InService != want.inService {
			t.Errorf("%s: state %s in service %v, want %s %v", key, in.ShownState(), in.InService, want.state, want.inService)
		}
	}
	if in := byKey["web/h5"]; in.State != "passing" || in.Maintenance == nil || in.Maintenance.Reason != "kernel upgrade" {
		t.Errorf("web/h5: state %q maintenance %+v, want passing under the host's", in.State, in.Maintenance)
	}
	var web, db Service
	for _, svc := range s.Services {
		switch svc.Name {
		case "web":
			web = svc
		case "db":
			db = svc
		}
	}
	if web.FailingOpen || !db.FailingOpen {
		t.Errorf("failing open: web %v db %v, want false true", web.FailingOpen, db.FailingOpen)
	}
	if len(s.Maintenance) != 2 || s.Maintenance[0].Host != "h1" || s.Maintenance[0].Active || !s.Maintenance[1].Active {
		t.Errorf("maintenance %+v, want h1/web ended, h5 active", s.Maintenance)
	}
	if len(s.Skipped) != 1 || s.Skipped[0].Key != "/rollcall/maintenance/h6" || !strings.Contains(s.Skipped[0].Reason, "needs a reason") {
		t.Errorf("skipped %+v, want the reason-less maintenance of h6", s.Skipped)
	}
	for _, h := range s.Hosts {
		if (h.Maintenance != nil) != (h.Name == "h5") {
			t.Errorf("host %s maintenance %+v: only h5 is in maintenance", h.Name, h.Maintenance)
		}
	}
}

func TestHealthRender(t *testing.T) {
	tests := []struct {
		name   string
		render func(*strings.Builder, *Snapshot) error
		want   string
	}{
		{
			name:   "ls",
			render: func(b *strings.Builder, s *Snapshot) error { return RenderLs(b, s, FormatTable) },
			want: `SERVICE  HOST  SHARD  STATE                                ADDRESSES         PORTS  ROLE  TTL
db       h1    -      critical for 1m (served: fail open)  public=192.0.2.1  -      -     none
db       h6    -      critical (served: fail open)         public=192.0.2.1  -      -     none
web      h1    -      passing                              public=192.0.2.1  -      -     none
web      h2    -      warning for 5m                       public=192.0.2.1  -      -     none
web      h3    -      critical for 1h                      public=192.0.2.1  -      -     none
web      h4    -      draining for 10s                     public=192.0.2.1  -      -     none
web      h5    -      maintenance                          public=192.0.2.1  -      -     none
`,
		},
		{
			name:   "status",
			render: func(b *strings.Builder, s *Snapshot) error { return RenderStatus(b, s, FormatTable) },
			want: `HOST              LEASE  TTL   SERVICES  ADDRESSES
h1                -      none  db,web    (no valid host record)
h2                -      none  web       (no valid host record)
h3                -      none  web       (no valid host record)
h4                -      none  web       (no valid host record)
h5 (maintenance)  -      none  web       (no valid host record)
h6                -      none  db        (no valid host record)

SERVICE  HOST  STATE                         SINCE                           WHY
db       h1    critical (served: fail open)  2023-11-14T22:12:20Z (1m ago)   disk full
db       h6    critical (served: fail open)  -                               -
web      h2    warning                       2023-11-14T22:08:20Z (5m ago)   -
web      h3    critical                      2023-11-14T21:13:20Z (1h ago)   http: connection refused
web      h4    draining                      2023-11-14T22:13:10Z (10s ago)  -
web      h5    maintenance                   -                               kernel upgrade (maintenance of host h5, by ops@admin1)

MAINTENANCE HOST  SERVICE       REASON          WHO         UNTIL
h1                web           disk swap       -           ended 2023-11-14T21:56:40Z (16m ago; counts as absent)
h5                (whole host)  kernel upgrade  ops@admin1  until 2023-11-14T23:13:20Z (in 1h)

no elections

revision 9: 2 services, 7 instances (1 passing, 1 warning, 3 critical, 1 draining, 1 maintenance), 6 hosts, 0 election candidates; services failing open: 1; malformed keys skipped: 1

SKIPPED KEY               REASON
/rollcall/maintenance/h6  maintenance of h6: registry: bad record: maintenance needs a reason: say why, for whoever looks next
`,
		},
		{
			name:   "maint ls",
			render: func(b *strings.Builder, s *Snapshot) error { return RenderMaint(b, s, FormatTable) },
			want: `MAINTENANCE HOST  SERVICE       REASON          WHO         UNTIL
h1                web           disk swap       -           ended 2023-11-14T21:56:40Z (16m ago; counts as absent)
h5                (whole host)  kernel upgrade  ops@admin1  until 2023-11-14T23:13:20Z (in 1h)
`,
		},
		{
			name: "maint ls, none",
			render: func(b *strings.Builder, _ *Snapshot) error {
				return RenderMaint(b, BuildAt(testKeys, 3, nil, nil, healthNow), FormatTable)
			},
			want: "nothing in maintenance under /rollcall/ (revision 3)\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := tc.render(&b, healthSample()); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

// TestHealthJSON pins the field names of state and maintenance.
func TestHealthJSON(t *testing.T) {
	var b strings.Builder
	if err := RenderStatus(&b, healthSample(), FormatJSON); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Instances   []map[string]any `json:"instances"`
		Maintenance []map[string]any `json:"maintenance"`
		Counts      map[string]any   `json:"counts"`
	}
	if err := json.Unmarshal([]byte(b.String()), &v); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, b.String())
	}
	got, _ := json.Marshal(v)
	want := `{"instances":[` +
		`{"host":"h1","in_service":false,"reason":"disk full","service":"db","since":1699999940,"state":"critical"},` +
		`{"host":"h6","in_service":false,"service":"db","state":"critical"},` +
		`{"host":"h1","in_service":true,"service":"web","since":1699999000,"state":"passing"},` +
		`{"host":"h2","in_service":true,"service":"web","since":1699999700,"state":"warning"},` +
		`{"host":"h3","in_service":false,"reason":"http: connection refused","service":"web","since":1699996400,"state":"critical"},` +
		`{"host":"h4","in_service":false,"service":"web","since":1699999990,"state":"draining"},` +
		`{"host":"h5","in_service":false,"maintenance":{"active":true,"host":"h5","reason":"kernel upgrade","until":1700003600,"who":"ops@admin1"},"service":"web","state":"passing"}],` +
		`"maintenance":[{"active":false,"host":"h1","reason":"disk swap","service":"web","until":1699999000},` +
		`{"active":true,"host":"h5","reason":"kernel upgrade","until":1700003600,"who":"ops@admin1"}],` +
		`"counts":{"candidates":0,"failing_open":1,"hosts":6,"instances":7,"services":2,"skipped":1,"states":{"critical":3,"draining":1,"maintenance":1,"passing":1,"warning":1}}}`
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	if err := RenderLs(&b, healthSample(), FormatJSON); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"failing_open": true`) {
		t.Errorf("ls JSON lacks failing_open:\n%s", b.String())
	}
}
