package health

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rollcall/rollcall/registry"
)

func spec(kind Kind, target string, argv ...string) Spec {
	s := Spec{Kind: kind, Target: target, Argv: argv, Interval: 10 * time.Second, Timeout: 2 * time.Second}
	s.SetDefaults()
	return s
}

func TestProbeHTTP(t *testing.T) {
	var gotUA string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUA = r.UserAgent()
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
			return
		case "/big":
			fmt.Fprint(w, strings.Repeat("x", 100000))
			return
		}
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
		fmt.Fprintf(w, "answered %d\n", code)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		path string
		want registry.State
		out  string
	}{
		{"/200", P, "HTTP 200 OK: answered 200"},
		{"/204", P, "HTTP 204 No Content"},
		{"/429", W, "HTTP 429 Too Many Requests: answered 429"},
		{"/503", C, "HTTP 503 Service Unavailable: answered 503"},
		{"/404", C, "HTTP 404 Not Found"},
		{"/redirect", C, "HTTP 302 Found"}, // not followed
	} {
		r := run(t.Context(), spec(KindHTTP, srv.URL+tc.path))
		if r.State != tc.want || !strings.HasPrefix(r.Output, tc.out) {
			t.Errorf("GET %s: %s %q, want %s %q", tc.path, r.State, r.Output, tc.want, tc.out)
		}
	}
	if gotUA != userAgent {
		t.Errorf("User-Agent %q, want %q", gotUA, userAgent)
	}
	if r := run(t.Context(), spec(KindHTTP, srv.URL+"/big")); r.State != P || len(r.Output) > MaxOutput {
		t.Errorf("a big body: %s, %d bytes of output, want passing and at most %d", r.State, len(r.Output), MaxOutput)
	}
}

func TestProbeHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	s := spec(KindHTTP, srv.URL+"/slow")
	s.Timeout = 200 * time.Millisecond
	r := run(t.Context(), s)
	if r.State != C || !strings.HasPrefix(r.Output, "timed out after 200ms") {
		t.Errorf("a slow server: %s %q, want critical, timed out", r.State, r.Output)
	}
}

func TestProbeHTTPRefusesNames(t *testing.T) {
	// Validate refuses names; the dialer refuses what got past it, for
	// every kind that dials (gRPC's own resolver included: its target is
	// passed through to the dialer).
	for _, s := range []Spec{
		spec(KindHTTP, "http://localhost:1/"),
		spec(KindTCP, "localhost:1"),
		spec(KindGRPC, "localhost:1"),
		spec(KindGRPC, "localhost:1/db.Store"),
	} {
		r := run(t.Context(), s)
		if r.State != C || !strings.Contains(r.Output, "never resolve names") {
			t.Errorf("%s: %s %q, want critical, refused before any lookup", s, r.State, r.Output)
		}
	}
}

func TestProbeTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if r := run(t.Context(), spec(KindTCP, addr)); r.State != P {
		t.Errorf("open listener: %s %q", r.State, r.Output)
	}
	ln.Close()
	if r := run(t.Context(), spec(KindTCP, addr)); r.State != C || r.Output == "" {
		t.Errorf("closed listener: %s %q, want critical with the error", r.State, r.Output)
	}
}

func TestProbeGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := grpchealth.NewServer()
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	hs.SetServingStatus("db.Store", healthpb.HealthCheckResponse_SERVING)
	for _, tc := range []struct {
		target string
		want   registry.State
	}{
		{addr, P}, // the server's overall status starts SERVING
		{addr + "/db.Store", P},
		{addr + "/no.Such", C},
	} {
		if r := run(t.Context(), spec(KindGRPC, tc.target)); r.State != tc.want {
			t.Errorf("%s: %s %q, want %s", tc.target, r.State, r.Output, tc.want)
		}
	}
	hs.SetServingStatus("db.Store", healthpb.HealthCheckResponse_NOT_SERVING)
	if r := run(t.Context(), spec(KindGRPC, addr+"/db.Store")); r.State != C || r.Output != "NOT_SERVING" {
		t.Errorf("NOT_SERVING: %s %q", r.State, r.Output)
	}
	srv.Stop()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if r := run(t.Context(), spec(KindGRPC, addr)); r.State != C {
		t.Errorf("server gone: %s %q", r.State, r.Output)
	}
}

// script writes an executable /bin/sh script into dir.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProbeExecExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		body string
		want registry.State
		out  string
	}{
		{"echo all good\n", P, "all good"},
		{"echo slow replies >&2\nexit 1\n", W, "slow replies"},
		{"echo down\nexit 2\n", C, "exit status 2: down"},
		{"kill -9 $$\n", C, "signal: killed"},
		{"head -c 100000 /dev/zero | tr '\\0' x\n", P, "xxxx"},
	} {
		r := run(t.Context(), spec(KindExec, "", script(t, dir, "check", tc.body)))
		if r.State != tc.want || !strings.Contains(r.Output, tc.out) || len(r.Output) > MaxOutput {
			t.Errorf("%q: %s %q, want %s with %q", tc.body, r.State, r.Output, tc.want, tc.out)
		}
	}
	r := run(t.Context(), spec(KindExec, "", filepath.Join(dir, "missing")))
	if r.State != C || !strings.Contains(r.Output, "no such file") {
		t.Errorf("a missing program: %s %q", r.State, r.Output)
	}
	// No shell: an argument with shell syntax is one argument.
	r = run(t.Context(), spec(KindExec, "", script(t, dir, "args", `echo "$#:$1"`+"\n"), "a b; exit 3"))
	if r.State != P || r.Output != "1:a b; exit 3" {
		t.Errorf("argv: %s %q", r.State, r.Output)
	}
}

// TestProbeExecTimeoutKillsGroup runs a script that forks a sleep and
// sleeps itself: at the timeout both are killed.
func TestProbeExecTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	s := spec(KindExec, "", script(t, dir, "hang", fmt.Sprintf("sleep 60 &\necho $! > %s/child\necho $$ > %s/self\nsleep 60\n", dir, dir)))
	s.Timeout = 500 * time.Millisecond
	r := run(t.Context(), s)
	if r.State != C || !strings.HasPrefix(r.Output, "timed out after 500ms") {
		t.Errorf("hanging check: %s %q", r.State, r.Output)
	}
	for _, f := range []string{"self", "child"} {
		waitGone(t, readPID(t, filepath.Join(dir, f)), f)
	}
}

// TestProbeExecLeftovers: a check that exits while a child it forked
// still runs (and holds its output) passes, and the child is killed.
func TestProbeExecLeftovers(t *testing.T) {
	dir := t.TempDir()
	r := run(t.Context(), spec(KindExec, "", script(t, dir, "fork", fmt.Sprintf("sleep 60 &\necho $! > %s/child\necho forked\n", dir))))
	if r.State != P || r.Output != "forked" {
		t.Errorf("check with a leftover child: %s %q", r.State, r.Output)
	}
	waitGone(t, readPID(t, filepath.Join(dir, "child")), "child")

	// A child that left the process group cannot be killed with it; the
	// run still ends (after execWaitDelay), with the exit status standing.
	r = run(t.Context(), spec(KindExec, "", script(t, dir, "escape", fmt.Sprintf("setsid sh -c 'echo $$ > %s/escaped; exec sleep 60' &\nsleep 0.2\nexit 0\n", dir))))
	pid := readPID(t, filepath.Join(dir, "escaped"))
	defer syscall.Kill(pid, syscall.SIGKILL)
	if r.State != P || !strings.Contains(r.Output, "outside its process group") {
		t.Errorf("check with an escaped child: %s %q", r.State, r.Output)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	for range 50 {
		b, err := os.ReadFile(path)
		if err == nil {
			if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

// waitGone waits (with generous slack) until pid has no live process: gone
// or a zombie waiting for its new parent to reap it.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) || zombie(pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s (pid %d) still runs after the check ended", what, pid)
			syscall.Kill(pid, syscall.SIGKILL)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}
