package rollcall_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/plugin/rollcall"
	"github.com/rollcall/rollcall/test/testkit"
)

// httpStack is the fixture in etcd and CoreDNS serving the infra block
// (views by source address, 127.0.0.0/8 ranges posing as overlays) with
// `http` on a free port.
type httpStack struct {
	*stack
	httpAddr string
	corefile string
}

func startHTTPStack(t *testing.T, httpExtra string) *httpStack {
	t.Helper()
	e := testkit.StartEtcd(t)
	s := &stack{etcd: e, cli: e.Client(t), port: testkit.FreePort(t)}
	s.terms = putFixture(t, s.cli)
	h := &httpStack{stack: s, httpAddr: fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))}
	h.corefile = fmt.Sprintf("infra.example.com.:%d {\n  rollcall {\n    endpoint %s\n%s\n    http %s%s\n  }\n}\n",
		s.port, strings.Join(e.Endpoints(), " "), rollcall.Blocks[0].Body, h.httpAddr, httpExtra)
	s.dns = testkit.StartCoreDNS(t, h.corefile)
	return h
}

// httpFrom is a client whose connections come from the source address
// from, without keep-alive (no connection outlives a test).
func httpFrom(from string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	return &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		Timeout:   2 * time.Minute,
	}
}

type httpReply struct {
	status int
	header http.Header
	body   []byte
}

func (h *httpStack) get(t *testing.T, from, path string) httpReply {
	t.Helper()
	r, err := httpGet(httpFrom(from), "http://"+h.httpAddr+path)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, from, err)
	}
	return r
}

func httpGet(c *http.Client, url string) (httpReply, error) {
	resp, err := c.Get(url)
	if err != nil {
		return httpReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return httpReply{resp.StatusCode, resp.Header, b}, err
}

// decode checks the status and decodes the JSON body into v.
func (r httpReply) decode(t *testing.T, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r httpReply) index(t *testing.T) int64 {
	t.Helper()
	n, err := strconv.ParseInt(r.header.Get("X-Rollcall-Index"), 10, 64)
	if err != nil {
		t.Fatalf("X-Rollcall-Index %q: %v", r.header.Get("X-Rollcall-Index"), err)
	}
	return n
}

type apiServices struct {
	Revision int64 `json:"revision"`
	Services []struct {
		Name      string         `json:"name"`
		Instances int            `json:"instances"`
		Served    int            `json:"served"`
		States    map[string]int `json:"states"`
		Master    *apiMaster     `json:"master"`
	} `json:"services"`
}

type apiMaster struct {
	Host string `json:"host"`
	Term int64  `json:"term"`
}

type apiService struct {
	Revision  int64      `json:"revision"`
	Name      string     `json:"name"`
	View      []string   `json:"view"`
	Master    *apiMaster `json:"master"`
	Instances []struct {
		Host    string   `json:"host"`
		Shard   string   `json:"shard"`
		Network string   `json:"network"`
		Addrs   []string `json:"addrs"`
		State   string   `json:"state"`
		Since   int64    `json:"since"`
		Reason  string   `json:"reason"`
		Served  bool     `json:"served"`
		Master  bool     `json:"master"`
		Ports   []struct {
			Name  string `json:"name"`
			Port  int    `json:"port"`
			Proto string `json:"proto"`
		} `json:"ports"`
	} `json:"instances"`
}

type apiError struct {
	Error string `json:"error"`
}

// TestHTTPServices checks /v1/services and /v1/services/{service} against
// the fixture, and that each view gets over HTTP what it gets over DNS.
func TestHTTPServices(t *testing.T) {
	h := startHTTPStack(t, "")

	t.Run("services", func(t *testing.T) {
		var got apiServices
		r := h.get(t, "127.0.0.1", "/v1/services")
		r.decode(t, http.StatusOK, &got)
		if got.Revision != r.index(t) || got.Revision == 0 {
			t.Errorf("revision %d, header %d", got.Revision, r.index(t))
		}
		var names []string
		for _, s := range got.Services {
			names = append(names, s.Name)
			if s.Name == "web" {
				if s.Instances != 4 || s.Served != 4 || s.States["passing"] != 4 {
					t.Errorf("web: %+v, want 4 instances, 4 served, 4 passing", s)
				}
				if s.Master == nil || s.Master.Host != "h2" || s.Master.Term != h.terms["web"] {
					t.Errorf("web master %+v, want h2 term %d", s.Master, h.terms["web"])
				}
			}
			if s.Name == "lone" && s.Master != nil {
				t.Errorf("lone's leader has no instance of it: master %+v, want none", s.Master)
			}
		}
		if !slices.IsSorted(names) {
			t.Errorf("services not sorted by name: %v", names)
		}
		for _, want := range []string{"api", "cache", "db", "db-master", "lone", "many", "web"} {
			if !slices.Contains(names, want) {
				t.Errorf("services %v lack %s", names, want)
			}
		}
	})

	// Each client gets the addresses DNS gives it: the same view rule.
	for _, from := range []string{"127.0.0.1", "127.0.1.5", "127.0.2.5", "127.0.1.200"} {
		t.Run("web from "+from, func(t *testing.T) {
			var got apiService
			h.get(t, from, "/v1/services/web").decode(t, http.StatusOK, &got)
			var addrs []string
			for _, in := range got.Instances {
				for _, a := range in.Addrs {
					if !strings.Contains(a, ":") {
						addrs = append(addrs, a)
					}
				}
			}
			m := h.query(t, "udp", from, "web.infra.example.com.", dns.TypeA)
			dnsAddrs := testkit.Addrs(m.Answer)
			slices.Sort(addrs)
			slices.Sort(dnsAddrs)
			if !slices.Equal(addrs, dnsAddrs) {
				t.Errorf("HTTP gives %v, DNS gives %v", addrs, dnsAddrs)
			}
		})
	}

	t.Run("web in detail", func(t *testing.T) {
		var got apiService
		h.get(t, "127.0.1.5", "/v1/services/web").decode(t, http.StatusOK, &got)
		if !slices.Equal(got.View, []string{"vpn0"}) {
			t.Errorf("view %v, want [vpn0]", got.View)
		}
		if got.Master == nil || got.Master.Host != "h2" {
			t.Errorf("master %+v, want h2", got.Master)
		}
		if len(got.Instances) != 4 {
			t.Fatalf("%d instances, want 4: %+v", len(got.Instances), got.Instances)
		}
		h1, h2 := got.Instances[0], got.Instances[1]
		if h1.Host != "h1" || h1.Shard != "s1" || h1.Network != "vpn0" || !slices.Equal(h1.Addrs, []string{"10.100.0.1"}) || h1.State != "passing" || !h1.Served || h1.Master {
			t.Errorf("h1: %+v", h1)
		}
		if h2.Host != "h2" || !h2.Master || len(h2.Ports) != 2 || h2.Ports[1].Name != "metrics" || h2.Ports[1].Port != 9100 {
			t.Errorf("h2: %+v", h2)
		}
		if h3 := got.Instances[2]; h3.Network != "public" || !slices.Equal(h3.Addrs, []string{"192.0.2.3"}) || h3.Ports == nil {
			t.Errorf("h3 (on no overlay): %+v", h3)
		}
	})

	t.Run("health states", func(t *testing.T) {
		var got apiService
		h.get(t, "127.0.0.1", "/v1/services/st").decode(t, http.StatusOK, &got)
		want := map[string]string{"h1": "passing served", "h2": "warning served", "h3": "critical not served", "h4": "draining not served"}
		for _, in := range got.Instances {
			served := "served"
			if !in.Served {
				served = "not served"
			}
			if w := want[in.Host]; w != in.State+" "+served {
				t.Errorf("%s: %s %s, want %s", in.Host, in.State, served, w)
			}
			if in.Host == "h3" && (in.Reason != "check http: connection refused" || in.Since != 1700000002) {
				t.Errorf("h3: reason %q since %d", in.Reason, in.Since)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			path   string
			status int
			want   string
		}{
			{"/v1/services/nosuch", http.StatusNotFound, "no service nosuch"},
			{"/v1/services/Bad_Name", http.StatusBadRequest, "service name"},
			{"/v1/services?sevice=web", http.StatusBadRequest, `unknown parameter "sevice"`},
			{"/v1/services?index=x", http.StatusBadRequest, "is not a revision"},
			{"/v1/services?index=1&wait=1y", http.StatusBadRequest, "is not a duration"},
			{"/v1/services?index=1&wait=1h", http.StatusBadRequest, "longer than"},
			{"/v1/nothing", http.StatusNotFound, "no endpoint /v1/nothing"},
			{"/v1/prometheus", http.StatusBadRequest, "port is required"},
			{"/v1/prometheus?port=http&state=sick", http.StatusBadRequest, `state "sick"`},
			{"/v1/explain?type=A", http.StatusBadRequest, "name is required"},
			{"/v1/explain?name=web.example.org", http.StatusBadRequest, "not in this server block's zones"},
			{"/v1/explain?name=web.infra.example.com&type=BOGUS", http.StatusBadRequest, `type "BOGUS"`},
			{"/v1/explain?name=web.infra.example.com&client=x", http.StatusBadRequest, `client "x"`},
		} {
			var e apiError
			h.get(t, "127.0.0.1", tc.path).decode(t, tc.status, &e)
			if !strings.Contains(e.Error, tc.want) {
				t.Errorf("%s: error %q, want it to contain %q", tc.path, e.Error, tc.want)
			}
		}
		resp, err := httpFrom("127.0.0.1").Post("http://"+h.httpAddr+"/v1/services", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST: status %d, want 405", resp.StatusCode)
		}
	})
}

type sdGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// TestHTTPPrometheus checks the targets of Prometheus's HTTP service
// discovery: one group per instance with the port, at the address in the
// caller's view, with the labels.
func TestHTTPPrometheus(t *testing.T) {
	h := startHTTPStack(t, "")
	var got []sdGroup
	h.get(t, "127.0.1.5", "/v1/prometheus?port=http&service=web").decode(t, http.StatusOK, &got)
	if len(got) != 2 {
		t.Fatalf("groups %+v, want h1 and h2 of web", got)
	}
	want := []sdGroup{
		{Targets: []string{"10.100.0.1:8080"}, Labels: map[string]string{"__meta_rollcall_service": "web", "__meta_rollcall_host": "h1", "__meta_rollcall_shard": "s1",
			"__meta_rollcall_state": "passing", "__meta_rollcall_master": "false", "__meta_rollcall_network": "vpn0", "__meta_rollcall_port": "http"}},
		{Targets: []string{"10.100.0.2:8080"}, Labels: map[string]string{"__meta_rollcall_service": "web", "__meta_rollcall_host": "h2", "__meta_rollcall_shard": "s2",
			"__meta_rollcall_state": "passing", "__meta_rollcall_master": "true", "__meta_rollcall_network": "vpn0", "__meta_rollcall_port": "http"}},
	}
	for i := range want {
		if !slices.Equal(got[i].Targets, want[i].Targets) || fmt.Sprint(got[i].Labels) != fmt.Sprint(want[i].Labels) {
			t.Errorf("group %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	h.get(t, "127.0.0.1", "/v1/prometheus?port=pg&service=db").decode(t, http.StatusOK, &got)
	if len(got) != 1 || got[0].Targets[0] != "198.51.100.1:5432" {
		t.Errorf("db's pg: %+v", got)
	}
	h.get(t, "127.0.0.1", "/v1/prometheus?port=nosuch").decode(t, http.StatusOK, &got)
	if got == nil || len(got) != 0 {
		t.Errorf("a port no instance has: %+v, want []", got)
	}
	h.get(t, "127.0.0.1", "/v1/prometheus?port=http&service=web&state=critical").decode(t, http.StatusOK, &got)
	if len(got) != 0 {
		t.Errorf("web, state=critical: %+v, want none", got)
	}
	// Every state by default: a sick instance is still scraped.
	h.get(t, "127.0.0.1", "/v1/prometheus?port=http&service=st").decode(t, http.StatusOK, &got)
	if len(got) != 4 {
		t.Errorf("st: %d groups, want all 4 instances whatever their state", len(got))
	}
	h.get(t, "127.0.0.1", "/v1/prometheus?port=http&service=st&state=critical,draining").decode(t, http.StatusOK, &got)
	if len(got) != 2 || got[0].Labels["__meta_rollcall_state"] != "critical" || got[1].Labels["__meta_rollcall_state"] != "draining" {
		t.Errorf("st, state=critical,draining: %+v, want h3 and h4", got)
	}
}

type explainBody struct {
	Client      string   `json:"client"`
	View        []string `json:"view"`
	Rcode       string   `json:"rcode"`
	Truncated   bool     `json:"truncated"`
	Answer      []string `json:"answer"`
	Authority   []string `json:"authority"`
	Additional  []string `json:"additional"`
	Fallthrough bool     `json:"fallthrough"`
}

// TestHTTPExplain checks that explain gives the view and answer a client
// gets over DNS, and refuses a client whose view the caller lacks.
func TestHTTPExplain(t *testing.T) {
	h := startHTTPStack(t, "")
	answerAddrs := func(rrs []string) []string {
		var out []string
		for _, rr := range rrs {
			f := strings.Fields(rr)
			out = append(out, f[len(f)-1])
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct{ caller, client string }{
		{"127.0.0.1", ""},
		{"127.0.1.5", ""},
		{"127.0.1.200", "127.0.1.5"}, // on both: may ask for vpn0 alone
		{"127.0.1.5", "127.0.0.1"},   // public is every view's
	} {
		t.Run(tc.caller+" for "+tc.client, func(t *testing.T) {
			path := "/v1/explain?name=web.infra.example.com&type=A"
			if tc.client != "" {
				path += "&client=" + tc.client
			}
			var got explainBody
			h.get(t, tc.caller, path).decode(t, http.StatusOK, &got)
			client := tc.client
			if client == "" {
				client = tc.caller
			}
			m := h.query(t, "udp", client, "web.infra.example.com.", dns.TypeA)
			want := testkit.Addrs(m.Answer)
			slices.Sort(want)
			if got.Client != client || got.Rcode != "NOERROR" || !slices.Equal(answerAddrs(got.Answer), want) {
				t.Errorf("explain: %+v, want client %s and DNS's answer %v", got, client, want)
			}
		})
	}
	t.Run("views over HTTP", func(t *testing.T) {
		var got explainBody
		h.get(t, "127.0.1.200", "/v1/explain?name=web.infra.example.com").decode(t, http.StatusOK, &got)
		if !slices.Equal(got.View, []string{"vpn0", "vpn1"}) {
			t.Errorf("view of 127.0.1.200: %v, want [vpn0 vpn1]", got.View)
		}
	})
	t.Run("a client on a network the caller is not on: 403", func(t *testing.T) {
		var e apiError
		h.get(t, "127.0.0.1", "/v1/explain?name=web.infra.example.com&client=127.0.1.5").decode(t, http.StatusForbidden, &e)
		if !strings.Contains(e.Error, "vpn0") {
			t.Errorf("error %q does not name vpn0", e.Error)
		}
		h.get(t, "127.0.1.5", "/v1/explain?name=web.infra.example.com&client=127.0.2.5").decode(t, http.StatusForbidden, &e)
	})
	t.Run("NXDOMAIN with the SOA", func(t *testing.T) {
		var got explainBody
		h.get(t, "127.0.0.1", "/v1/explain?name=nosuch.infra.example.com&type=AAAA").decode(t, http.StatusOK, &got)
		if got.Rcode != "NXDOMAIN" || len(got.Authority) != 1 || !strings.Contains(got.Authority[0], "SOA") {
			t.Errorf("explain nosuch: %+v", got)
		}
	})
	t.Run("truncated over UDP, whole over TCP", func(t *testing.T) {
		var udp, tcp explainBody
		h.get(t, "127.0.0.1", "/v1/explain?name=many.infra.example.com").decode(t, http.StatusOK, &udp)
		h.get(t, "127.0.0.1", "/v1/explain?name=many.infra.example.com&net=tcp").decode(t, http.StatusOK, &tcp)
		if !udp.Truncated || len(udp.Answer) >= 60 || tcp.Truncated || len(tcp.Answer) != 60 {
			t.Errorf("udp: TC %v with %d answers; tcp: TC %v with %d; want TC with fewer than 60, then all 60", udp.Truncated, len(udp.Answer), tcp.Truncated, len(tcp.Answer))
		}
	})
}

// TestHTTPBlockingQuery checks that a blocking query returns after a
// change with the new index, and at the wait's end when nothing changes.
// The bounds are correctness bounds with slack, not speed (bench/ measures
// the wake-up).
func TestHTTPBlockingQuery(t *testing.T) {
	h := startHTTPStack(t, "")
	r := h.get(t, "127.0.0.1", "/v1/services/web")
	rev := r.index(t)

	t.Run("returns on a change", func(t *testing.T) {
		done := make(chan httpReply, 1)
		go func() {
			r, err := httpGet(httpFrom("127.0.0.1"), fmt.Sprintf("http://%s/v1/services/web?index=%d&wait=2m", h.httpAddr, rev))
			if err != nil {
				t.Errorf("blocking query: %v", err)
			}
			done <- r
		}()
		select {
		case r := <-done:
			t.Fatalf("returned before any change: %d %s", r.status, r.body)
		case <-time.After(500 * time.Millisecond):
		}
		put := testkit.Put(t, h.cli, "/rollcall/hosts/h3/services/web", `{"service":"web","host":"h3","shard":"s3"}`)
		select {
		case r := <-done:
			var got apiService
			r.decode(t, http.StatusOK, &got)
			if r.index(t) != put.Header.Revision {
				t.Errorf("index %d, want the write's revision %d", r.index(t), put.Header.Revision)
			}
			if got.Instances[2].Shard != "s3" {
				t.Errorf("h3 after the write: %+v", got.Instances[2])
			}
			rev = r.index(t)
		case <-time.After(10 * time.Second):
			t.Fatal("a blocking query did not return within 10 s of a change")
		}
	})

	t.Run("returns at the wait's end", func(t *testing.T) {
		start := time.Now()
		r := h.get(t, "127.0.0.1", fmt.Sprintf("/v1/services/web?index=%d&wait=1s", rev))
		took := time.Since(start)
		if r.status != http.StatusOK || r.index(t) != rev {
			t.Errorf("status %d, index %d; want 200 and the same index %d", r.status, r.index(t), rev)
		}
		if took < time.Second || took > 1*time.Second+time.Second/16+3*time.Second {
			t.Errorf("returned after %v, want the wait (1s) plus at most 1/16 of it (and slack)", took)
		}
	})

	t.Run("an older index returns at once", func(t *testing.T) {
		r := h.get(t, "127.0.0.1", fmt.Sprintf("/v1/services?index=%d&wait=2m", rev-1))
		if r.status != http.StatusOK || r.index(t) != rev {
			t.Errorf("status %d, index %d; want 200 and %d", r.status, r.index(t), rev)
		}
	})

	t.Run("shutdown releases waiters", func(t *testing.T) {
		done := make(chan httpReply, 1)
		go func() {
			r, _ := httpGet(httpFrom("127.0.0.1"), fmt.Sprintf("http://%s/v1/services?index=%d&wait=5m", h.httpAddr, rev))
			done <- r
		}()
		time.Sleep(300 * time.Millisecond)
		if err := h.dns.Close(); err != nil {
			t.Errorf("stop CoreDNS: %v", err)
		}
		select {
		case r := <-done:
			if r.status != http.StatusOK {
				t.Errorf("status %d at shutdown, want 200 with the state served", r.status)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a blocking query was still held 10 s after CoreDNS stopped")
		}
		if _, err := net.DialTimeout("tcp", h.httpAddr, time.Second); err == nil {
			t.Error("the HTTP address still accepts connections after shutdown")
		}
	})
}

// TestHTTPReload checks that a Corefile reload gives the HTTP address to
// the new server (the same address must bind again), releases the old
// server's blocking queries, and that a failed reload leaves the old one
// serving.
func TestHTTPReload(t *testing.T) {
	h := startHTTPStack(t, "")
	rev := h.get(t, "127.0.0.1", "/v1/services").index(t)
	done := make(chan httpReply, 1)
	go func() {
		r, _ := httpGet(httpFrom("127.0.0.1"), fmt.Sprintf("http://%s/v1/services?index=%d&wait=5m", h.httpAddr, rev))
		done <- r
	}()
	time.Sleep(300 * time.Millisecond)
	restart := func(corefile string) error {
		inst, err := h.dns.Instance.Restart(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "Corefile", ServerTypeName: "dns"})
		h.dns.Instance = inst
		return err
	}
	if err := restart(h.corefile); err != nil {
		t.Fatalf("reload: %v", err)
	}
	select {
	case r := <-done:
		if r.status != http.StatusOK {
			t.Errorf("blocking query across the reload: status %d", r.status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a blocking query was still held 10 s after the reload")
	}
	var got apiServices
	h.get(t, "127.0.0.1", "/v1/services").decode(t, http.StatusOK, &got)
	if len(got.Services) == 0 {
		t.Error("no services after the reload")
	}
	put := testkit.Put(t, h.cli, "/rollcall/hosts/h3/services/web", `{"service":"web","host":"h3","shard":"s9"}`)
	testkit.Eventually(t, 10*time.Second, "the new server does not follow etcd", func() bool {
		return h.get(t, "127.0.0.1", "/v1/services").index(t) >= put.Header.Revision
	})

	bad := strings.Replace(h.corefile, "http ", "bogus_option\n    http ", 1)
	if err := restart(bad); err == nil {
		t.Fatal("a reload with an unknown option succeeded")
	}
	h.get(t, "127.0.0.1", "/v1/services").decode(t, http.StatusOK, &got)
}

// TestHTTPNotLoaded checks the 503 before the first list of etcd.
func TestHTTPNotLoaded(t *testing.T) {
	rollcall.SetStartupWait(t, 200*time.Millisecond)
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	testkit.StartCoreDNS(t, fmt.Sprintf("infra.example.com.:0 {\n  rollcall {\n    endpoint http://127.0.0.1:%d\n    http %s\n  }\n}\n", testkit.FreePort(t), addr))
	for _, path := range []string{"/v1/services", "/v1/services/web", "/v1/prometheus?port=http"} {
		r, err := httpGet(httpFrom("127.0.0.1"), "http://"+addr+path)
		if err != nil {
			t.Fatal(err)
		}
		var e apiError
		r.decode(t, http.StatusServiceUnavailable, &e)
		if !strings.Contains(e.Error, "first list") {
			t.Errorf("%s: %q does not say the first list is not in", path, e.Error)
		}
	}
	r, err := httpGet(httpFrom("127.0.0.1"), "http://"+addr+"/")
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "first list") {
		t.Errorf("status page before the first list: %d\n%s", r.status, r.body)
	}
}

// TestHTTPAddressTwice checks that two blocks given one address are
// refused with an error that names both.
func TestHTTPAddressTwice(t *testing.T) {
	e := testkit.StartEtcd(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	cf := fmt.Sprintf("a.example.:0 {\n  rollcall {\n    endpoint %[1]s\n    http %[2]s\n  }\n}\nb.example.:0 {\n  rollcall {\n    endpoint %[1]s\n    http %[2]s\n  }\n}\n", e.ClientURL, addr)
	c, err := testkit.NewCoreDNS(cf)
	if err == nil {
		c.Stop()
		t.Fatal("two blocks on one http address started")
	}
	for _, want := range []string{"a.example.", "b.example.", "Corefile:4", "Corefile:10", "own http address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// TestHTTPTLS checks `http ADDR CERT KEY CA`: HTTPS, and a client without
// a certificate from the CA is refused; and `http ADDR CERT KEY`: HTTPS
// for any client.
func TestHTTPTLS(t *testing.T) {
	f := testkit.NewTLS(t, "scraper")
	h := startHTTPStack(t, fmt.Sprintf(" %s %s %s", f.ServerCert, f.ServerKey, f.CA))
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
	}
	if _, err := httpGet(client(), "https://"+h.httpAddr+"/v1/services"); err == nil {
		t.Error("a client without a certificate was served")
	}
	cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	r, err := httpGet(client(cert), "https://"+h.httpAddr+"/v1/services")
	if err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	var got apiServices
	r.decode(t, http.StatusOK, &got)

	// Without a CA, HTTPS serves any client.
	open := startHTTPStack(t, fmt.Sprintf(" %s %s", f.ServerCert, f.ServerKey))
	r, err = httpGet(client(), "https://"+open.httpAddr+"/v1/services")
	if err != nil {
		t.Fatalf("HTTPS without a CA, a client without a certificate: %v", err)
	}
	r.decode(t, http.StatusOK, &got)

	if _, err := httpGet(httpFrom("127.0.0.1"), "http://"+h.httpAddr+"/v1/services"); err == nil {
		// Go's server answers plain HTTP on a TLS port with a 400.
		r, _ := httpGet(httpFrom("127.0.0.1"), "http://"+h.httpAddr+"/v1/services")
		if r.status == http.StatusOK {
			t.Error("plain HTTP was served on the TLS address")
		}
	}
}

// TestHTTPStatusPage checks the page's content without a browser
// (test/web loads it in Chromium).
func TestHTTPStatusPage(t *testing.T) {
	h := startHTTPStack(t, "")
	// Just after start, on a loaded machine, the watch may still be
	// behind the list (the page says so): the page is read once watching.
	var r httpReply
	testkit.Eventually(t, 30*time.Second, "the status page never showed the watch watching", func() bool {
		r = h.get(t, "127.0.1.5", "/")
		return strings.Contains(string(r.body), `<dd id="watch-state">watching</dd>`)
	})
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, type %q", r.status, r.header.Get("Content-Type"))
	}
	page := string(r.body)
	for _, want := range []string{`id="svc-web"`, "10.100.0.1", "http:8080/tcp", "master <b>h2</b>, term " + strconv.FormatInt(h.terms["web"], 10), "vpn0 <small>(127.0.1.5)</small>", "/static/status.js"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	rev := r.index(t)
	// The revision served and the watch's age, as the page's header shows
	// them; a plain refresh for a browser without script; and nothing
	// loaded from anywhere but this server.
	if want := fmt.Sprintf(`<dd id="revision">%d</dd>`, rev); !strings.Contains(page, want) {
		t.Errorf("page lacks the revision served, %s", want)
	}
	if !regexp.MustCompile(`<dd id="age">[0-9.]+[mµn]?s ago</dd>`).MatchString(page) {
		t.Errorf("page lacks how long ago etcd was heard from")
	}
	if !strings.Contains(page, `<noscript><meta http-equiv="refresh" content="10"></noscript>`) {
		t.Errorf("page lacks the refresh for a browser without script")
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "http") {
		t.Errorf("Content-Security-Policy %q: want default-src 'none' and nothing from another origin", csp)
	}
	testkit.Delete(t, h.cli, "/rollcall/hosts/h4/services/web")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/?partial=1&index=%d&wait=20s", h.httpAddr, rev), nil)
	resp, err := httpFrom("127.0.0.1").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	part := string(b)
	if strings.Contains(part, "<html") || !strings.Contains(part, `id="changes"`) {
		t.Errorf("partial page is not the state part:\n%s", part)
	}
	if !strings.Contains(part, "<td>web</td><td>h4</td><td>deregistered</td>") {
		t.Errorf("recent changes lack h4's deregistration:\n%s", part)
	}
	for _, f := range []string{"status.css", "status.js"} {
		if r := h.get(t, "127.0.0.1", "/static/"+f); r.status != http.StatusOK || len(r.body) == 0 {
			t.Errorf("/static/%s: %d", f, r.status)
		}
	}
}

// TestHTTPExplainFallthrough checks that explain never hands a query to
// the next plugin: a name the block lacks is reported as falling through.
func TestHTTPExplainFallthrough(t *testing.T) {
	e := testkit.StartEtcd(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	testkit.StartCoreDNS(t, fmt.Sprintf("infra.example.com.:0 {\n  rollcall {\n    endpoint %s\n    fallthrough\n    http %s\n  }\n}\n", e.ClientURL, addr))
	r, err := httpGet(httpFrom("127.0.0.1"), "http://"+addr+"/v1/explain?name=nosuch.infra.example.com")
	if err != nil {
		t.Fatal(err)
	}
	var got explainBody
	r.decode(t, http.StatusOK, &got)
	if !got.Fallthrough || got.Rcode != "NXDOMAIN" {
		t.Errorf("explain of a name that falls through: %+v, want NXDOMAIN with fallthrough", got)
	}
}
