package servicereg

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/test/testkit"
)

// metricValue scrapes the agent's /metrics and returns the value of the
// series named exactly (name{labels}), or "" when absent.
func metricValue(t *testing.T, a *Agent, series string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func healthz(a *Agent) (int, string) {
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

func TestHealthStatus(t *testing.T) {
	now := time.Unix(1000, 0)
	cases := []struct {
		name  string
		h     *health
		wantX string // substring of the reason; "" means healthy
	}{
		{name: "no lease yet", h: &health{window: 10 * time.Second}, wantX: "no etcd lease yet"},
		{name: "lease lost with error", h: &health{window: 10 * time.Second, lastErr: errors.New("boom")}, wantX: "no etcd lease: boom"},
		{name: "healthy", h: &health{window: 10 * time.Second, leaseHeld: true, lastOK: now.Add(-time.Second)}},
		{name: "write failed", h: &health{window: 10 * time.Second, leaseHeld: true, lastOK: now, lastErr: errors.New("timeout")}, wantX: "last etcd write failed"},
		{name: "stale", h: &health{window: 10 * time.Second, leaseHeld: true, lastOK: now.Add(-time.Minute)}, wantX: "no successful etcd round trip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.h.status(now)
			if c.wantX == "" && got != "" || c.wantX != "" && !strings.Contains(got, c.wantX) {
				t.Fatalf("status = %q, want %q", got, c.wantX)
			}
		})
	}
}

func TestMetricsAndHealthz(t *testing.T) {
	e := testkit.StartEtcd(t)
	a := newDemoAgent(t, e.Endpoints(), 2*time.Second)
	if code, _ := healthz(a); code != http.StatusServiceUnavailable {
		t.Fatalf("healthz before start = %d, want 503", code)
	}
	runAgent(t, a)
	if code, body := healthz(a); code != http.StatusOK {
		t.Fatalf("healthz = %d %q, want 200", code, body)
	}
	for series, want := range map[string]string{
		"rollcall_servicereg_registered_services": "1",
		"rollcall_servicereg_lease_held":          "1",
		"rollcall_servicereg_lease_grants_total":  "1",
	} {
		if got := metricValue(t, a, series); got != want {
			t.Errorf("%s = %q, want %q", series, got, want)
		}
	}
	if metricValue(t, a, "rollcall_servicereg_last_successful_write_timestamp_seconds") == "0" {
		t.Error("last write timestamp not set")
	}
	e.Stop()
	testkit.Eventually(t, wait, "healthz 503 while etcd is down", func() bool {
		code, body := healthz(a)
		return code == http.StatusServiceUnavailable && body != ""
	})
	e.Start()
	testkit.Eventually(t, wait, "healthz 200 after etcd is back", func() bool {
		code, _ := healthz(a)
		return code == http.StatusOK
	})
}
