package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/internal/inspect"
	"github.com/rollcall/rollcall/test/testkit"
)

// tourYAML returns the agent config of docs/TOUR.md: the ```yaml block
// that starts with "# tour.yml".
func tourYAML(t *testing.T) string { return tourBlock(t, "tour.yml") }

// tourBlock returns the ```yaml block of docs/TOUR.md that starts with
// "# NAME:".
func tourBlock(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testkit.RepoRoot(t), "docs", "TOUR.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(data), "```yaml\n")[1:] {
		body, _, _ := strings.Cut(block, "```")
		if strings.HasPrefix(body, "# "+name+":") {
			return body
		}
	}
	t.Fatalf("docs/TOUR.md has no ```yaml block starting with # %s:", name)
	return ""
}

// TestTour follows docs/TOUR.md: a unit registered by `rollcall dev
// -services-config tour.yml` appears in DNS when started and vanishes when
// killed; two `rollcall elect demo` take turns as master, and the master
// name's term grows when the first one stops; the status page shows the
// master changes and a unit started again.
func TestTour(t *testing.T) {
	sd := testkit.StartSystemd(t)
	sd.WriteUnit("web.service", testkit.SleepUnit)
	cfgPath := filepath.Join(t.TempDir(), "tour.yml")
	if err := os.WriteFile(cfgPath, []byte(tourYAML(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	ports := newDevPorts(t)
	d := startDev(t, filepath.Join(t.TempDir(), "dev"), ports, []string{"-services-config", cfgPath}, sd.Env())
	defer d.interrupt(t)

	rcode := func(name string, qtype uint16) int {
		r, err := testkit.Exchange("udp", d.dnsAddr, "", name, qtype)
		if err != nil {
			return -1
		}
		return r.Rcode
	}

	t.Run("a unit appears in DNS when started", func(t *testing.T) {
		if rc := rcode("web."+zone, dns.TypeA); rc != dns.RcodeNameError {
			t.Fatalf("web before its unit started: rcode %s, want NXDOMAIN", dns.RcodeToString[rc])
		}
		sd.Systemctl("start", "web.service")
		testkit.Eventually(t, time.Minute, "web never appeared in DNS", func() bool {
			return rcode("web."+zone, dns.TypeA) == dns.RcodeSuccess
		})
		r := testkit.Query(t, "tcp", d.dnsAddr, "", "_http._tcp.web."+zone, dns.TypeSRV)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.SRV).Port != 8080 {
			t.Errorf("SRV _http._tcp.web: %v, want port 8080", r.Answer)
		}
		out := rollcall(t, nil, "ls", "-endpoints", d.endpoint)
		if !strings.Contains(out, "http:8080/tcp") {
			t.Errorf("rollcall ls lacks web's port:\n%s", out)
		}
	})

	t.Run("a killed unit vanishes", func(t *testing.T) {
		sd.Systemctl("kill", "web.service")
		testkit.Eventually(t, time.Minute, "web still in DNS after its unit was killed", func() bool {
			return rcode("web."+zone, dns.TypeA) == dns.RcodeNameError
		})
	})

	t.Run("a master change", func(t *testing.T) {
		termRe := regexp.MustCompile(`master, term (\d+)`)
		elect := func() (*exec.Cmd, *testkit.Buffer) {
			var out testkit.Buffer
			cmd := exec.Command(testkit.Binary(t, "rollcall"), "elect", "-endpoints", d.endpoint, "demo", "--",
				"sh", "-c", `echo "master, term $ROLLCALL_TERM"; sleep 3600`)
			cmd.Stdout, cmd.Stderr = &out, &out
			// CMD (sleep) inherits the output pipe: do not wait on it
			// longer than this once rollcall elect has exited.
			cmd.WaitDelay = 5 * time.Second
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if cmd.ProcessState != nil {
					return
				}
				// SIGINT, so that rollcall elect stops its CMD too.
				_ = cmd.Process.Signal(os.Interrupt)
				done := make(chan struct{})
				go func() { _ = cmd.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					_ = cmd.Process.Kill()
					<-done
				}
				if t.Failed() {
					t.Logf("rollcall elect output:\n%s", out.String())
				}
			})
			return cmd, &out
		}
		termOf := func(out *testkit.Buffer) int64 {
			m := termRe.FindStringSubmatch(out.String())
			if m == nil {
				return 0
			}
			n, _ := strconv.ParseInt(m[1], 10, 64)
			return n
		}
		status := func() inspect.StatusView {
			var st inspect.StatusView
			if err := json.Unmarshal([]byte(rollcall(t, nil, "status", "-o", "json", "-endpoints", d.endpoint)), &st); err != nil {
				t.Fatalf("rollcall status -o json: %v", err)
			}
			return st
		}
		masterTXT := func() string {
			r, err := testkit.Exchange("udp", d.dnsAddr, "", "demo-master."+zone, dns.TypeTXT)
			if err != nil {
				return err.Error()
			}
			var parts []string
			for _, rr := range r.Answer {
				if txt, ok := rr.(*dns.TXT); ok {
					parts = append(parts, txt.Txt...)
				}
			}
			return strings.Join(parts, " ")
		}

		a, aOut := elect()
		testkit.Eventually(t, time.Minute, "the first candidate never became master", func() bool { return termOf(aOut) > 0 })
		first := termOf(aOut)
		_, bOut := elect()
		testkit.Eventually(t, time.Minute, "status never showed two candidates", func() bool {
			st := status()
			return len(st.Masters) == 1 && st.Masters[0].Candidates == 2
		})
		if st := status(); st.Masters[0].Term != first || st.Masters[0].Service != "demo" {
			t.Errorf("status masters %+v, want demo at term %d", st.Masters, first)
		}
		testkit.Eventually(t, time.Minute, "demo-master TXT never showed the first term", func() bool {
			return strings.Contains(masterTXT(), fmt.Sprintf("term=%d", first))
		})
		if termOf(bOut) != 0 {
			t.Fatalf("the second candidate runs its command while the first is master:\n%s", bOut)
		}

		// Ctrl-C the first: the second takes over, with a larger term.
		if err := a.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		go func() { <-ctx.Done(); _ = a.Process.Kill() }()
		_ = a.Wait()
		testkit.Eventually(t, time.Minute, "the second candidate never became master", func() bool { return termOf(bOut) > 0 })
		second := termOf(bOut)
		if second <= first {
			t.Errorf("new master's term %d is not larger than the old one's %d", second, first)
		}
		testkit.Eventually(t, time.Minute, "demo-master TXT never showed the new term", func() bool {
			return strings.Contains(masterTXT(), fmt.Sprintf("term=%d", second))
		})
	})

	t.Run("the status page follows a unit", func(t *testing.T) {
		page := fmt.Sprintf("http://127.0.0.1:%d/", ports.http)
		get := func(url string) string {
			resp, err := http.Get(url)
			if err != nil {
				return err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}
		// The candidates of the step before have resigned: the page shows
		// their terms among the recent changes.
		if body := get(page); !strings.Contains(body, `id="svc-demo"`) || !strings.Contains(body, "became master, term") {
			t.Errorf("status page lacks demo and its master changes:\n%s", body)
		}
		sd.Systemctl("start", "web.service")
		testkit.Eventually(t, time.Minute, "web never appeared on the status page", func() bool {
			return strings.Contains(get(page), `id="svc-web"`)
		})
		var svc struct {
			Instances []struct {
				Ports []struct {
					Port int `json:"port"`
				} `json:"ports"`
			} `json:"instances"`
		}
		if err := json.Unmarshal([]byte(get(page+"v1/services/web")), &svc); err != nil || len(svc.Instances) != 1 || len(svc.Instances[0].Ports) != 1 || svc.Instances[0].Ports[0].Port != 8080 {
			t.Errorf("/v1/services/web: %+v (%v), want one instance with port 8080", svc, err)
		}
	})

	t.Run("a red check takes an instance out of DNS", func(t *testing.T) {
		dir := t.TempDir()
		down, sock := filepath.Join(dir, "web-b-down"), filepath.Join(dir, "b.sock")
		// The tour's paths and etcd, moved to this test's.
		doc := tourBlock(t, "tour-b.yml")
		conf := strings.NewReplacer("/tmp/web-b-down", down, "/tmp/rollcall-tour-b.sock", sock, "http://127.0.0.1:2379", d.endpoint).Replace(doc)
		for _, moved := range []string{"/tmp/web-b-down", "/tmp/rollcall-tour-b.sock", "http://127.0.0.1:2379"} {
			if !strings.Contains(doc, moved) {
				t.Fatalf("tour-b.yml does not name %s, which this test moves to its own:\n%s", moved, doc)
			}
		}
		cfgPath := filepath.Join(dir, "tour-b.yml")
		if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		sd.Systemctl("start", "web.service")
		cmd := exec.Command(testkit.Binary(t, "servicereg"), "-config", cfgPath, "-metrics", "")
		cmd.Env = append(os.Environ(), sd.Env()...)
		agent, err := testkit.StartProcess(cmd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			agent.Stop(30 * time.Second)
			if t.Failed() {
				t.Logf("second agent's output:\n%s", agent.Out.String())
			}
		})

		const boxB = "192.0.2.20"
		addrs := func() (ip []string) {
			r, err := testkit.Exchange("udp", d.dnsAddr, "", "web."+zone, dns.TypeA)
			if err != nil {
				return nil
			}
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok {
					ip = append(ip, a.A.String())
				}
			}
			return ip
		}
		testkit.Eventually(t, time.Minute, "web never answered with box-b's address beside box's", func() bool {
			got := addrs()
			return len(got) == 2 && slices.Contains(got, boxB)
		})

		if err := os.WriteFile(down, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, time.Minute, "box-b's address stayed in web's answer after its check turned red", func() bool {
			got := addrs()
			return len(got) == 1 && !slices.Contains(got, boxB)
		})
		r := testkit.Query(t, "udp", d.dnsAddr, "", "box-b.web."+zone, dns.TypeTXT)
		if len(r.Answer) != 1 || !slices.Equal(r.Answer[0].(*dns.TXT).Txt, []string{"state=critical"}) {
			t.Errorf("TXT box-b.web: %v, want \"state=critical\"", r.Answer)
		}
		var out, errOut strings.Builder
		status := exec.Command(testkit.Binary(t, "servicereg"), "status", "-config", cfgPath)
		status.Stdout, status.Stderr = &out, &errOut
		if err := status.Run(); err != nil {
			t.Fatalf("servicereg status: %v\n%s", err, errOut.String())
		}
		if !strings.Contains(out.String(), "critical") || !strings.Contains(out.String(), "web-b-down is there") {
			t.Errorf("servicereg status shows no critical web and its check:\n%s", out.String())
		}
		t.Logf("servicereg status:\n%s", out.String())
		type instance struct {
			Host   string `json:"host"`
			State  string `json:"state"`
			Reason string `json:"reason"`
		}
		var svc struct {
			Instances []instance `json:"instances"`
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/services/web", ports.http))
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&svc)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("/v1/services/web: %v", err)
		}
		if !slices.ContainsFunc(svc.Instances, func(in instance) bool {
			return in.Host == "box-b" && in.State == "critical" && strings.Contains(in.Reason, "web-b-down is there")
		}) {
			t.Errorf("/v1/services/web: %+v, want box-b critical with its check's output as the reason", svc.Instances)
		}

		if err := os.Remove(down); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, time.Minute, "box-b's address never came back after its check turned green", func() bool {
			return slices.Contains(addrs(), boxB)
		})
	})
}
