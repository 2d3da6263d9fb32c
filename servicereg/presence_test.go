package servicereg

import (
	"net/netip"
	"testing"

	"github.com/rollcall/rollcall/registry"
)

func TestPresent(t *testing.T) {
	cases := []struct {
		name  string
		state UnitState
		want  bool
	}{
		{name: "active running", state: UnitState{LoadState: "loaded", ActiveState: "active", SubState: "running"}, want: true},
		{name: "active exited (oneshot)", state: UnitState{LoadState: "loaded", ActiveState: "active", SubState: "exited"}, want: true},
		{name: "reloading", state: UnitState{LoadState: "loaded", ActiveState: "reloading", SubState: "reload"}, want: true},
		{name: "inactive", state: UnitState{LoadState: "loaded", ActiveState: "inactive", SubState: "dead"}},
		{name: "failed", state: UnitState{LoadState: "loaded", ActiveState: "failed", SubState: "failed"}},
		{name: "activating", state: UnitState{LoadState: "loaded", ActiveState: "activating", SubState: "start"}},
		{name: "deactivating", state: UnitState{LoadState: "loaded", ActiveState: "deactivating", SubState: "stop-sigterm"}},
		{name: "not found", state: UnitState{LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}},
		{name: "unknown (never reported)", state: UnitState{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Present(c.state); got != c.want {
				t.Fatalf("Present(%+v) = %v, want %v", c.state, got, c.want)
			}
		})
	}
}

func TestPresentServices(t *testing.T) {
	svcs := []Service{{Name: "web", Unit: "web.service"}, {Name: "api", Unit: "api.service"}, {Name: "alias", Unit: "web.service"}}
	static := []Service{{Name: "demo", Unit: "demo.service"}}
	cases := []struct {
		name  string
		units map[string]UnitState
		want  []string
	}{
		{name: "nothing reported: only static", units: nil, want: []string{"demo"}},
		{name: "web active: both services of the unit", units: map[string]UnitState{
			"web.service": {LoadState: "loaded", ActiveState: "active"},
			"api.service": {LoadState: "loaded", ActiveState: "failed"},
		}, want: []string{"alias", "demo", "web"}},
		{name: "api reloading", units: map[string]UnitState{
			"api.service": {LoadState: "loaded", ActiveState: "reloading"},
		}, want: []string{"api", "demo"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := presentServices(svcs, static, c.units)
			if len(got) != len(c.want) {
				t.Fatalf("present = %v, want %v", got, c.want)
			}
			for _, n := range c.want {
				if !got[n] {
					t.Fatalf("present = %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestDesiredRecords(t *testing.T) {
	k := registry.MustKeys("/rc")
	svcs := []Service{{Name: "web", Shard: "s1", Ports: []registry.Port{{Name: "http", Port: 80, Proto: "tcp"}}}, {Name: "api"}, {Name: "db"}}
	addrs := registry.Addrs{"public": {netip.MustParseAddr("192.0.2.10")}}
	got, err := desiredRecords(k, "h1", addrs, svcs, map[string]instanceHealth{
		"web": {State: registry.StatePassing, Since: 1700000000},
		"db":  {State: registry.StateCritical, Since: 1700000005, Reason: "tcp 127.0.0.1:5432: connection refused"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/rc/hosts/h1/host":         `{"name":"h1","addrs":{"public":["192.0.2.10"]}}`,
		"/rc/hosts/h1/services/web": `{"service":"web","host":"h1","shard":"s1","ports":[{"name":"http","port":80,"proto":"tcp"}],"state":"passing","since":1700000000}`,
		"/rc/hosts/h1/services/db":  `{"service":"db","host":"h1","state":"critical","since":1700000005,"reason":"tcp 127.0.0.1:5432: connection refused"}`,
	}
	if len(got) != len(want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	for key, v := range want {
		if got[key] != v {
			t.Errorf("%s = %s, want %s", key, got[key], v)
		}
	}
	// A record that would not validate is an error, never written.
	if _, err := desiredRecords(k, "h1", addrs, svcs, map[string]instanceHealth{"web": {State: registry.StatePassing, Reason: "only critical carries one"}}); err == nil {
		t.Error("a passing record with a reason was built")
	}
}
