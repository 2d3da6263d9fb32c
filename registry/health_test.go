package registry

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStateRules(t *testing.T) {
	for _, c := range []struct {
		s         State
		inService bool
		weight    uint16
	}{
		{"", true, WeightPassing}, // an older agent's record
		{StatePassing, true, WeightPassing},
		{StateWarning, true, WeightWarning},
		{StateCritical, false, WeightPassing},
		{StateDraining, false, WeightPassing},
	} {
		if got := c.s.InService(); got != c.inService {
			t.Errorf("%q.InService() = %v, want %v", c.s, got, c.inService)
		}
		if c.inService && c.s.Weight() != c.weight {
			t.Errorf("%q.Weight() = %d, want %d", c.s, c.s.Weight(), c.weight)
		}
	}
	if State("").Effective() != StatePassing {
		t.Error(`State("").Effective() is not passing`)
	}
}

func TestInstanceHealthValidation(t *testing.T) {
	keys := MustKeys(DefaultPrefix)
	key, err := keys.Parse(keys.Instance("h1", "web"))
	if err != nil {
		t.Fatal(err)
	}
	good := []string{
		`{"service":"web","host":"h1"}`,
		`{"service":"web","host":"h1","state":"passing","since":1700000000}`,
		`{"service":"web","host":"h1","state":"warning","since":1}`,
		`{"service":"web","host":"h1","state":"critical","since":1,"reason":"http 503"}`,
		`{"service":"web","host":"h1","state":"draining","since":1}`,
	}
	for _, v := range good {
		if _, err := DecodeInstance(key, []byte(v)); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	bad := map[string]string{
		`{"service":"web","host":"h1","state":"sick"}`:                                                            "must be one of",
		`{"service":"web","host":"h1","state":"PASSING"}`:                                                         "must be one of",
		`{"service":"web","host":"h1","state":7}`:                                                                 "not a JSON record",
		`{"service":"web","host":"h1","state":"passing","since":-1}`:                                              "negative",
		`{"service":"web","host":"h1","state":"passing","reason":"x"}`:                                            "only a critical instance",
		`{"service":"web","host":"h1","state":"critical","reason":"a\nb"}`:                                        "control character",
		`{"service":"web","host":"h1","state":"critical","reason":"` + strings.Repeat("x", MaxReasonLen+1) + `"}`: "at most 256",
	}
	for v, want := range bad {
		_, err := DecodeInstance(key, []byte(v))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.80s: error %v, want one saying %q", v, err, want)
			continue
		}
		if r, _ := ReasonOf(err); r != ReasonRecord {
			t.Errorf("%.80s: reason %q, want %q", v, r, ReasonRecord)
		}
		if !errors.Is(err, ErrBadRecord) {
			t.Errorf("%.80s: not ErrBadRecord: %v", v, err)
		}
	}
}

func TestMaintenanceKeysAndRecords(t *testing.T) {
	keys := MustKeys("/rc")
	for _, c := range []struct{ host, service string }{{"h1", ""}, {"h1", "web"}} {
		k, err := keys.Parse(keys.Maintenance(c.host, c.service))
		if err != nil {
			t.Fatal(err)
		}
		if k.Kind != KindMaintenance || k.Host != c.host || k.Service != c.service {
			t.Errorf("Parse(%s) = %+v", keys.Maintenance(c.host, c.service), k)
		}
		if !strings.HasPrefix(keys.Maintenance(c.host, c.service), keys.MaintenanceDir()) {
			t.Errorf("%s is not under %s", keys.Maintenance(c.host, c.service), keys.MaintenanceDir())
		}
	}
	for _, k := range []string{"/rc/maintenance/", "/rc/maintenance/H1", "/rc/maintenance/h1/web/x", "/rc/maintenance/h1/"} {
		if _, err := keys.Parse(k); err == nil {
			t.Errorf("Parse(%q) took a bad key", k)
		}
	}
	key, _ := keys.Parse(keys.Maintenance("h1", "web"))
	v, err := EncodeMaintenance(&Maintenance{Reason: "disk swap", Who: "ana", Until: 2000000000})
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMaintenance(key, v)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Active(time.Unix(1999999999, 0)) || m.Active(time.Unix(2000000000, 0)) {
		t.Errorf("Active around until=%d is wrong", m.Until)
	}
	if !(&Maintenance{Reason: "x"}).Active(time.Now()) {
		t.Error("maintenance without until is not active")
	}
	for v, want := range map[string]string{
		`{"who":"ana"}`:                 "needs a reason",
		`{"reason":"x","until":-5}`:     "negative",
		`{"reason":"x\u0007"}`:          "control character",
		`{"reason":"x"} {}`:             "trailing data",
		`{"reason":"x","until":"soon"}`: "not a JSON record",
	} {
		_, err := DecodeMaintenance(key, []byte(v))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", v, err, want)
		}
		if _, ok := ReasonOf(err); !ok {
			t.Errorf("%s: error carries no reason", v)
		}
	}
}

func TestReasonText(t *testing.T) {
	if got := ReasonText("line one\n\tline two\x00\x7f \u0085end  "); got != "line one line two end" {
		t.Errorf("ReasonText: %q", got)
	}
	long := ReasonText(strings.Repeat("é", 300))
	if len(long) > MaxReasonLen || !strings.HasSuffix(long, "…") {
		t.Errorf("ReasonText of 600 bytes: %d bytes %q", len(long), long)
	}
	// Whatever it is given, the record it makes validates.
	for _, r := range []string{long, "a\nb", "\x7f", "bad\xffutf8\r\n", strings.Repeat("x", 1000)} {
		in := &Instance{Service: "web", Host: "h1", State: StateCritical, Since: 1, Reason: ReasonText(r)}
		if _, err := EncodeInstance(in); err != nil {
			t.Errorf("reason from %.20q: %v", r, err)
		}
	}
}
