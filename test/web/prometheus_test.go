package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/test/testkit"
)

// refreshInterval is how often Prometheus asks rollcall for its targets.
const refreshInterval = time.Second

// prometheus is a Prometheus server from Debian's package, discovering its
// targets through rollcall's /v1/prometheus.
type prometheus struct {
	url  string
	proc *testkit.Process
}

// startPrometheus runs Prometheus with one scrape job whose targets come
// from sdURL, its data in a temporary folder, and waits until it is ready.
func startPrometheus(t *testing.T, bin, sdURL string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	// Scrapes are not what is tested: once a minute, at loopback addresses
	// nothing listens on.
	conf := fmt.Sprintf(`global:
  scrape_interval: 1m
scrape_configs:
  - job_name: rollcall
    http_sd_configs:
      - url: %q
        refresh_interval: %s
`, sdURL, refreshInterval)
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	cmd := exec.Command(bin, "--config.file="+confPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Dir = dir
	p, err := testkit.StartProcess(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.Out.String())
		}
	})
	pr := &prometheus{url: "http://" + addr, proc: p}
	testkit.Eventually(t, time.Minute, "prometheus never became ready", func() bool {
		if p.Exited() {
			t.Fatalf("prometheus exited: %v\n%s", p.Err(), p.Out.String())
		}
		resp, err := http.Get(pr.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return pr
}

// target is an active target of /api/v1/targets: its labels before
// relabelling, where the discovery's __meta_ labels are.
type target struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	ScrapePool       string            `json:"scrapePool"`
}

// targets returns the active targets by address.
func (p *prometheus) targets(t *testing.T) map[string]map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/api/v1/targets?state=active", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("prometheus targets: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			ActiveTargets []target `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("prometheus targets: status %q, %v", body.Status, err)
	}
	out := map[string]map[string]string{}
	for _, tg := range body.Data.ActiveTargets {
		if tg.ScrapePool == "rollcall" {
			out[tg.DiscoveredLabels["__address__"]] = tg.DiscoveredLabels
		}
	}
	return out
}

// waitTargets waits until Prometheus's targets are exactly want (by
// address) and returns them; within the refresh interval and generous
// slack, since the machine is shared.
func (p *prometheus) waitTargets(t *testing.T, timeout time.Duration, want ...string) map[string]map[string]string {
	t.Helper()
	slices.Sort(want)
	var got map[string]map[string]string
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		got = p.targets(t)
		var addrs []string
		for a := range got {
			addrs = append(addrs, a)
		}
		slices.Sort(addrs)
		if slices.Equal(addrs, want) {
			t.Logf("prometheus targets %v after %v", addrs, time.Since(start).Round(10*time.Millisecond))
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus targets %v after %v, want %v", addrs, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPrometheusDiscovery runs a real Prometheus against /v1/prometheus:
// every instance with the port is a target with its labels, and a change
// in etcd reaches Prometheus's targets within its refresh interval.
func TestPrometheusDiscovery(t *testing.T) {
	bin := need(t, "prometheus", "prometheus")
	s := startStack(t)
	s.putHost(t, "h1", "127.0.0.11")
	s.putHost(t, "h2", "127.0.0.12")
	s.putHost(t, "h3", "127.0.0.13")
	metrics := `,"ports":[{"name":"http","port":8080,"proto":"tcp"},{"name":"metrics","port":9100,"proto":"tcp"}]`
	s.putInstance(t, "h1", "web", `,"shard":"s1"`+metrics)
	s.putInstance(t, "h2", "web", `,"shard":"s2","state":"critical","reason":"check http: refused"`+metrics)
	s.putInstance(t, "h3", "db", `,"ports":[{"name":"pg","port":5432,"proto":"tcp"}]`) // no metrics port: no target
	s.elect(t, "web", 0x10, "h2")

	p := startPrometheus(t, bin, "http://"+s.httpAddr+"/v1/prometheus?port=metrics")
	got := p.waitTargets(t, 30*time.Second, "127.0.0.11:9100", "127.0.0.12:9100")
	for addr, want := range map[string]map[string]string{
		"127.0.0.11:9100": {"__meta_rollcall_service": "web", "__meta_rollcall_host": "h1", "__meta_rollcall_shard": "s1", "__meta_rollcall_state": "passing", "__meta_rollcall_master": "false"},
		"127.0.0.12:9100": {"__meta_rollcall_service": "web", "__meta_rollcall_host": "h2", "__meta_rollcall_shard": "s2", "__meta_rollcall_state": "critical", "__meta_rollcall_master": "true"},
	} {
		for k, v := range want {
			if got[addr][k] != v {
				t.Errorf("%s: label %s = %q, want %q (labels %v)", addr, k, got[addr][k], v, got[addr])
			}
		}
	}
	// Within the refresh interval, plus the 5 seconds Prometheus's
	// discovery manager waits between handing target updates to its
	// scrape manager, plus slack for a shared machine.
	follow := refreshInterval + 5*time.Second + 10*time.Second
	t.Run("a new instance becomes a target", func(t *testing.T) {
		s.putInstance(t, "h3", "web", metrics)
		p.waitTargets(t, follow, "127.0.0.11:9100", "127.0.0.12:9100", "127.0.0.13:9100")
	})
	t.Run("a deregistered instance is no target", func(t *testing.T) {
		testkit.Delete(t, s.cli, s.keys.Instance("h1", "web"))
		p.waitTargets(t, follow, "127.0.0.12:9100", "127.0.0.13:9100")
	})
	t.Run("a state change reaches the labels", func(t *testing.T) {
		s.putInstance(t, "h2", "web", `,"shard":"s2","state":"passing"`+metrics)
		testkit.Eventually(t, follow, "h2's state label never became passing", func() bool {
			return strings.EqualFold(p.targets(t)["127.0.0.12:9100"]["__meta_rollcall_state"], "passing")
		})
	})
}
