package rollcall

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rollcall/rollcall/registry"
)

// healthState is a small registry: h1 and h2 with web, h1 with db too.
func healthState(t *testing.T) *state {
	t.Helper()
	st := newState(registry.MustKeys("/rollcall"))
	ch := newChanges()
	for _, kv := range [][2]string{
		{"/rollcall/hosts/h1/host", `{"name":"h1","addrs":{"public":["192.0.2.1"]}}`},
		{"/rollcall/hosts/h2/host", `{"name":"h2","addrs":{"public":["192.0.2.2"]}}`},
		{"/rollcall/hosts/h1/services/web", `{"service":"web","host":"h1"}`},
		{"/rollcall/hosts/h2/services/web", `{"service":"web","host":"h2"}`},
		{"/rollcall/hosts/h1/services/db", `{"service":"db","host":"h1"}`},
	} {
		if err := st.put(kv[0], []byte(kv[1]), 1, ch); err != nil {
			t.Fatalf("put %s: %v", kv[0], err)
		}
	}
	return st
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatalf("read gauge: %v", err)
	}
	return m.GetGauge().GetValue()
}

func changed(ch changes) []string {
	return slices.Sorted(maps.Keys(ch.services))
}

func TestMaintenanceState(t *testing.T) {
	st := healthState(t)
	now := time.Unix(2000, 0)

	ch := newChanges()
	if err := st.put("/rollcall/maintenance/h1", []byte(`{"reason":"kernel","until":3000}`), 2, ch); err != nil {
		t.Fatalf("put host maintenance: %v", err)
	}
	if got := changed(ch); !slices.Equal(got, []string{"db", "web"}) {
		t.Errorf("host maintenance changed %v, want every service of h1", got)
	}
	if len(ch.hosts) != 0 {
		t.Errorf("host maintenance changed hosts %v: no address changed", ch.hosts)
	}
	if m := st.maintOf("h1", "web", now); m == nil || m.Reason != "kernel" {
		t.Errorf("maintOf h1 web = %+v, want the host's", m)
	}
	if m := st.maintOf("h1", "web", time.Unix(3000, 0)); m != nil {
		t.Errorf("maintOf at until = %+v, want none: expired counts as absent", m)
	}

	ch = newChanges()
	if err := st.put("/rollcall/maintenance/h1/web", []byte(`{"reason":"disk","until":2500}`), 3, ch); err != nil {
		t.Fatalf("put instance maintenance: %v", err)
	}
	if got := changed(ch); !slices.Equal(got, []string{"web"}) {
		t.Errorf("instance maintenance changed %v, want web", got)
	}
	if m := st.maintOf("h1", "web", now); m == nil || m.Reason != "disk" {
		t.Errorf("maintOf h1 web = %+v, want the instance's own", m)
	}
	if m := st.maintOf("h1", "web", time.Unix(2600, 0)); m == nil || m.Reason != "kernel" {
		t.Errorf("maintOf after the instance's ended = %+v, want the host's", m)
	}

	if until, ok := st.nextExpiry(0); !ok || until != 2500 {
		t.Errorf("nextExpiry(0) = %d %v, want 2500", until, ok)
	}
	if until, ok := st.nextExpiry(2500); !ok || until != 3000 {
		t.Errorf("nextExpiry(2500) = %d %v, want 3000", until, ok)
	}
	if _, ok := st.nextExpiry(3000); ok {
		t.Errorf("nextExpiry(3000): want none after the last end")
	}
	ch = newChanges()
	st.expired(2000, 2500, ch)
	if got := changed(ch); !slices.Equal(got, []string{"web"}) {
		t.Errorf("expired (2000, 2500] changed %v, want web", got)
	}
	ch = newChanges()
	st.expired(2500, 3000, ch)
	if got := changed(ch); !slices.Equal(got, []string{"db", "web"}) {
		t.Errorf("expired (2500, 3000] changed %v, want db web", got)
	}

	// Garbage over a good record removes it: it holds nothing out.
	ch = newChanges()
	err := st.put("/rollcall/maintenance/h1", []byte(`{"reason":""}`), 4, ch)
	var de *decodeError
	if !errors.As(err, &de) || de.reason != reasonRecord {
		t.Errorf("reason-less maintenance: %v, want a decodeError with reason %s", err, reasonRecord)
	}
	if got := changed(ch); !slices.Equal(got, []string{"db", "web"}) {
		t.Errorf("garbage over host maintenance changed %v, want db web", got)
	}
	if m := st.maintOf("h1", "db", now); m != nil {
		t.Errorf("maintOf after garbage = %+v, want none", m)
	}
	for _, bad := range []struct{ key, value, reason string }{
		{"/rollcall/maintenance/h2", `not json`, reasonRecord},
		{"/rollcall/maintenance/h2", `{"reason":"x","until":-1}`, reasonRecord},
		{"/rollcall/maintenance/h2", `{"reason":"x","until":"soon"}`, reasonRecord},
		{"/rollcall/maintenance/h2/web/x", `{"reason":"x"}`, reasonKey},
		{"/rollcall/maintenance/H2", `{"reason":"x"}`, reasonKey},
	} {
		err := st.put(bad.key, []byte(bad.value), 5, newChanges())
		if !errors.As(err, &de) || de.reason != bad.reason {
			t.Errorf("put %s %s: %v, want reason %s", bad.key, bad.value, err, bad.reason)
		}
	}

	ch = newChanges()
	st.del("/rollcall/maintenance/h1/web", ch)
	if got := changed(ch); !slices.Equal(got, []string{"web"}) {
		t.Errorf("delete changed %v, want web", got)
	}
	if len(st.maint) != 0 || len(st.maintSvc) != 0 {
		t.Errorf("maintenance left after deletes: %v %v", st.maint, st.maintSvc)
	}
	ch = newChanges()
	st.del("/rollcall/maintenance/h1/web", ch)
	if len(ch.services) != 0 {
		t.Errorf("deleting a missing record changed %v", changed(ch))
	}
}

// TestIndexMaintenanceReuse: maintenance changes an instance's answers
// without rebuilding its addresses, and leaves other instances as they were.
func TestIndexMaintenanceReuse(t *testing.T) {
	st := healthState(t)
	st.now = time.Unix(2000, 0)
	ix := newIndex(nil, "")
	ix.replace(st)
	before := ix.services["web"]
	h1, h2 := before.instance([]byte("h1")), before.instance([]byte("h2"))

	ch := newChanges()
	_ = st.put("/rollcall/maintenance/h1/web", []byte(`{"reason":"disk","until":3000}`), 2, ch)
	ix.update(st, ch)
	after := ix.services["web"]
	if after.instance([]byte("h2")) != h2 {
		t.Errorf("h2 rebuilt: an unchanged instance must be reused")
	}
	n1 := after.instance([]byte("h1"))
	if n1 == h1 || h1.maint != nil {
		t.Fatalf("h1's answers were modified in place or not replaced: queries share them")
	}
	if n1.maint == nil || n1.dnsState() != "maintenance" || &n1.pub[0] != &h1.pub[0] {
		t.Errorf("h1 under maintenance: maint %v, state %s, addresses shared %v", n1.maint, n1.dnsState(), &n1.pub[0] == &h1.pub[0])
	}
	if len(after.insts) != 1 || after.insts[0] != after.instance([]byte("h2")) || len(after.all) != 2 {
		t.Errorf("served %d (want h2 only), all %d (want 2)", len(after.insts), len(after.all))
	}

	// At until, the timer's rebuild takes h1 back.
	st.now = time.Unix(3000, 0)
	ch = newChanges()
	st.expired(2000, 3000, ch)
	ix.update(st, ch)
	if got := ix.services["web"]; len(got.insts) != 2 || got.instance([]byte("h1")).maint != nil {
		t.Errorf("after until: %d served, h1 maint %v; want both, none", len(got.insts), got.instance([]byte("h1")).maint)
	}
}

// TestFailOpenIndex: a service with only critical instances is served
// from them and counted, unless the block fails closed; draining and
// maintenance never fail open.
func TestFailOpenIndex(t *testing.T) {
	st := healthState(t)
	open, closed := newIndex(nil, ""), newIndex(nil, "")
	closed.failClosed = true
	base := gaugeValue(t, servicesFailingOpen)
	open.replace(st)
	closed.replace(st)

	put := func(key, value string) {
		t.Helper()
		ch := newChanges()
		if err := st.put(key, []byte(value), 2, ch); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		open.update(st, ch)
		closed.update(st, ch)
	}
	put("/rollcall/hosts/h1/services/web", `{"service":"web","host":"h1","state":"critical"}`)
	put("/rollcall/hosts/h2/services/web", `{"service":"web","host":"h2","state":"draining"}`)
	web := open.services["web"]
	if !web.failingOpen || len(web.insts) != 1 || web.insts[0].host != "h1" {
		t.Errorf("open block: failing open %v, served %d; want h1 alone", web.failingOpen, len(web.insts))
	}
	if !web.serves(web.instance([]byte("h1"))) || web.serves(web.instance([]byte("h2"))) {
		t.Errorf("serves: h1 %v h2 %v, want true false", web.serves(web.instance([]byte("h1"))), web.serves(web.instance([]byte("h2"))))
	}
	if cw := closed.services["web"]; cw.failingOpen || len(cw.insts) != 0 || len(cw.all) != 2 {
		t.Errorf("closed block: failing open %v, served %d, instances %d; want false, 0, 2", cw.failingOpen, len(cw.insts), len(cw.all))
	}
	if got := gaugeValue(t, servicesFailingOpen) - base; got != 1 {
		t.Errorf("services failing open: +%v, want +1", got)
	}

	// In maintenance, the critical instance is not served either.
	put("/rollcall/maintenance/h1", `{"reason":"kernel"}`)
	if web := open.services["web"]; web.failingOpen || len(web.insts) != 0 {
		t.Errorf("critical under maintenance: failing open %v, served %d; want neither", web.failingOpen, len(web.insts))
	}
	if got := gaugeValue(t, servicesFailingOpen) - base; got != 0 {
		t.Errorf("services failing open: +%v, want back to +0", got)
	}
	ch := newChanges()
	st.del("/rollcall/maintenance/h1", ch)
	open.update(st, ch)
	if got := gaugeValue(t, servicesFailingOpen) - base; got != 1 {
		t.Errorf("services failing open after the maintenance: +%v, want +1", got)
	}
	// A re-list keeps the count; closing the block takes its share back.
	open.replace(st)
	if got := gaugeValue(t, servicesFailingOpen) - base; got != 1 {
		t.Errorf("services failing open after replace: +%v, want +1", got)
	}
	open.close()
	closed.close()
	if got := gaugeValue(t, servicesFailingOpen) - base; got != 0 {
		t.Errorf("services failing open after close: +%v, want +0", got)
	}
}
