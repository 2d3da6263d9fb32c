package servicereg

import (
	"testing"
	"time"

	"github.com/rollcall/rollcall/registry"
)

func TestMaintenanceFor(t *testing.T) {
	now := time.Unix(1000, 0)
	recs := map[string]registry.Maintenance{
		"web": {Reason: "disk swap", Until: 2000},
		"db":  {Reason: "expired", Until: 1000},
		"api": {Reason: "forever"},
	}
	cases := []struct {
		service, scope, reason string
	}{
		{"web", "service", "disk swap"},
		{"db", "", ""}, // until is now: over
		{"api", "service", "forever"},
		{"other", "", ""},
	}
	for _, c := range cases {
		m, scope := maintenanceFor(recs, c.service, now)
		if scope != c.scope || (m == nil) != (c.reason == "") || (m != nil && m.Reason != c.reason) {
			t.Errorf("%s: %+v %q, want %q %q", c.service, m, scope, c.reason, c.scope)
		}
	}
	recs[""] = registry.Maintenance{Reason: "host down for RAM"}
	if m, scope := maintenanceFor(recs, "other", now); m == nil || scope != "host" || m.Reason != "host down for RAM" {
		t.Errorf("the host's maintenance covers every service: %+v %q", m, scope)
	}
	if m, scope := maintenanceFor(recs, "web", now); m == nil || scope != "host" {
		t.Errorf("the host's maintenance wins: %+v %q", m, scope)
	}
}

func TestNextMaintenanceEnd(t *testing.T) {
	now := time.Unix(1000, 0)
	if got := nextMaintenanceEnd(nil, now); !got.IsZero() {
		t.Fatalf("no records: %v", got)
	}
	recs := map[string]registry.Maintenance{
		"":    {Reason: "no end"},
		"web": {Reason: "later", Until: 3000},
		"db":  {Reason: "sooner", Until: 1500},
		"old": {Reason: "over", Until: 900},
	}
	if got := nextMaintenanceEnd(recs, now); !got.Equal(time.Unix(1500, 0)) {
		t.Fatalf("next end %v, want 1500", got)
	}
}
