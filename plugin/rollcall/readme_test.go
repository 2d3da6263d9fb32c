package rollcall_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/test/testkit"
)

// exampleCorefiles returns every `~~~ corefile` block of README.md and every
// corefile/*.Corefile, by name.
func exampleCorefiles(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	n := 0
	var cur *strings.Builder
	for _, line := range strings.Split(string(readme), "\n") {
		switch {
		case cur == nil && strings.TrimSpace(line) == "~~~ corefile":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "~~~":
			n++
			out[fmt.Sprintf("README.md example %d", n)] = cur.String()
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if n == 0 {
		t.Fatal("README.md has no ~~~ corefile example")
	}
	files, err := filepath.Glob("../../corefile/*.Corefile")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corefile/*.Corefile: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		out[filepath.Base(f)] = string(b)
	}
	return out
}

var (
	endpointLine = regexp.MustCompile(`(?m)^(\s*)endpoint .*$`)
	serverKey    = regexp.MustCompile(`(?m)^(\S+?):\d+(\s*\{)`)
	listenerLine = regexp.MustCompile(`(?m)^(\s*)(prometheus|ready|health)\b.*$`)
	rollcallLine = regexp.MustCompile(`(?m)^(\s*)rollcall\b([^{\n]*)\{`)
)

// localize points an example at the test's etcd and at free ports, changing
// nothing else.
func localize(t *testing.T, corefile string, endpoint string) string {
	corefile = endpointLine.ReplaceAllString(corefile, "${1}endpoint "+endpoint)
	if !endpointLine.MatchString(corefile) {
		corefile = rollcallLine.ReplaceAllString(corefile, "${1}rollcall${2}{\n${1}    endpoint "+endpoint)
	}
	corefile = serverKey.ReplaceAllString(corefile, "${1}:0${2}")
	corefile = listenerLine.ReplaceAllStringFunc(corefile, func(l string) string {
		m := listenerLine.FindStringSubmatch(l)
		return fmt.Sprintf("%s%s 127.0.0.1:%d", m[1], m[2], testkit.FreePort(t))
	})
	// Server blocks without a port listen on 53: give them port 0.
	return regexp.MustCompile(`(?m)^([a-z0-9.-]+\.[a-z]+|\.)(\s*\{)`).ReplaceAllString(corefile, "${1}:0${2}")
}

// TestExampleCorefiles boots every example Corefile against a test etcd so
// that none can rot, and asks one question where the example serves the
// zone on a port it can find.
func TestExampleCorefiles(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	testkit.Put(t, cli, "/rollcall/hosts/host1/host", `{"name":"host1","addrs":{"public":["192.0.2.1"]}}`)
	testkit.Put(t, cli, "/rollcall/hosts/host1/services/demo", `{"service":"demo","host":"host1"}`)
	for name, cf := range exampleCorefiles(t) {
		t.Run(name, func(t *testing.T) {
			local := localize(t, cf, e.ClientURL)
			if !strings.Contains(local, "rollcall") {
				t.Fatalf("example has no rollcall block:\n%s", cf)
			}
			c := testkit.StartCoreDNS(t, local)
			if c.UDP == "" {
				return
			}
			_, port, _ := strings.Cut(c.UDP[strings.LastIndex(c.UDP, ":"):], ":")
			m, err := testkit.Exchange("udp", "127.0.0.1:"+port, "", "demo.infra.example.com.", dns.TypeA)
			if err != nil {
				t.Fatalf("query: %v\n%s", err, local)
			}
			// All examples serve infra.example.com on their first server.
			if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
				t.Fatalf("demo.infra.example.com: %v\n%s", m, local)
			}
		})
	}
}

// TestREADMEDocumentsHTTP checks that the README's HTTP section gives the
// option's syntax and an example request of every endpoint.
func TestREADMEDocumentsHTTP(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	text := string(readme)
	if !strings.Contains(text, "    http ADDR [CERT KEY [CA]]\n") {
		t.Error("README's syntax lacks `http ADDR [CERT KEY [CA]]`")
	}
	examples := regexp.MustCompile(`(?m)^\$ curl [^\n]*http://127\.0\.0\.1:8053(/[^\s']*)`).FindAllStringSubmatch(text, -1)
	// Each endpoint's example: its path (before any query) and a part of
	// its query string.
	for _, endpoint := range []struct{ name, path, query string }{
		{"GET /v1/services", "/v1/services", ""},
		{"GET /v1/services/{service}", "/v1/services/web", ""},
		{"GET /v1/prometheus", "/v1/prometheus", "port="},
		{"GET /v1/explain", "/v1/explain", "name="},
		{"GET / (the status page)", "/", ""},
		{"GET /?partial=1 (its state part)", "/", "partial=1"},
		{"a blocking query", "/v1/services/web", "index="},
	} {
		found := false
		for _, m := range examples {
			path, query, _ := strings.Cut(m[1], "?")
			if path == endpoint.path && strings.Contains(query, endpoint.query) {
				found = true
			}
		}
		if !found {
			t.Errorf("README has no `$ curl` example of %s (%s?%s)", endpoint.name, endpoint.path, endpoint.query)
		}
	}
}
