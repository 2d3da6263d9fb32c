// Package e2e runs rollcall as its README says a user would: the built
// binaries, started as processes, queried over real DNS and read with the
// rollcall CLI. Every port is chosen by flag, so tests run beside each other
// and beside a `make run`.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/internal/inspect"
	"github.com/rollcall/rollcall/test/testkit"
)

const zone = "infra.example.com."

// devProc is a running `rollcall dev`.
type devProc struct {
	cmd            *exec.Cmd
	stdout, stderr *testkit.Buffer
	done           chan struct{}
	err            error // of Wait, once done is closed
	endpoint       string
	dnsAddr        string
}

type devPorts struct {
	etcd, peer, dns, http int
}

func newDevPorts(t *testing.T) devPorts {
	return devPorts{etcd: testkit.FreePort(t), peer: testkit.FreePort(t), dns: testkit.FreePort(t), http: testkit.FreePort(t)}
}

func (p devPorts) args(dataDir string) []string {
	return []string{"dev", "-data-dir", dataDir,
		"-etcd-port", strconv.Itoa(p.etcd), "-etcd-peer-port", strconv.Itoa(p.peer),
		"-dns-addr", "127.0.0.1:" + strconv.Itoa(p.dns), "-http-addr", "127.0.0.1:" + strconv.Itoa(p.http)}
}

// startDev starts `rollcall dev` with extra flags and environment, and
// waits for its banner.
func startDev(t *testing.T, dataDir string, ports devPorts, extra []string, env []string) *devProc {
	t.Helper()
	d := &devProc{
		cmd:      exec.Command(testkit.Binary(t, "rollcall"), append(ports.args(dataDir), extra...)...),
		stdout:   &testkit.Buffer{},
		stderr:   &testkit.Buffer{},
		done:     make(chan struct{}),
		endpoint: fmt.Sprintf("http://127.0.0.1:%d", ports.etcd),
		dnsAddr:  fmt.Sprintf("127.0.0.1:%d", ports.dns),
	}
	d.cmd.Stdout, d.cmd.Stderr = d.stdout, d.stderr
	d.cmd.Env = append(os.Environ(), env...)
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start rollcall dev: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	})
	testkit.Eventually(t, 2*time.Minute, "rollcall dev printed no banner", func() bool {
		select {
		case <-d.done:
			t.Fatalf("rollcall dev exited before it was up: %v\nstdout:\n%s\nstderr:\n%s", d.err, d.stdout, d.stderr)
		default:
		}
		return strings.Contains(d.stdout.String(), "Ctrl-C stops everything")
	})
	return d
}

// interrupt sends SIGINT, as Ctrl-C does, and waits for the exit.
func (d *devProc) interrupt(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("SIGINT: %v", err)
	}
	select {
	case <-d.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("rollcall dev still running 2 minutes after SIGINT\nstderr:\n%s", d.stderr)
	}
	if d.err != nil {
		t.Fatalf("rollcall dev after SIGINT: %v (want exit 0)\nstderr:\n%s", d.err, d.stderr)
	}
	for _, want := range []string{"DNS stopped", "lease is revoked", "etcd stopped"} {
		if !strings.Contains(d.stderr.String(), want) {
			t.Errorf("rollcall dev's log lacks %q after SIGINT:\n%s", want, d.stderr)
		}
	}
	if s := d.stderr.String(); strings.Contains(s, "panic") || strings.Contains(s, "DATA RACE") {
		t.Errorf("rollcall dev's log shows a crash:\n%s", s)
	}
}

// rollcall runs the CLI and returns its stdout; it fails the test on a
// non-zero exit.
func rollcall(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testkit.Binary(t, "rollcall"), args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rollcall %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// TestDevEndToEnd is the README's tour on one machine: `rollcall dev` comes
// up, the demo name answers over UDP and TCP with the addresses `rollcall ls`
// shows, status reports the host and its lease, a malformed key is counted
// and harms nothing, Ctrl-C stops everything with exit 0 and the lease
// revoked, and a second run on the same data folder finds etcd's data intact.
func TestDevEndToEnd(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "dev")
	ports := newDevPorts(t)
	d := startDev(t, dataDir, ports, nil, nil)

	banner := d.stdout.String()
	for _, want := range []string{
		fmt.Sprintf("dig @127.0.0.1 -p %d demo.infra.example.com", ports.dns),
		"etcdctl --endpoints " + d.endpoint + " get --prefix /rollcall/",
		"ls -endpoints " + d.endpoint,
		fmt.Sprintf("Status page: http://127.0.0.1:%d/", ports.http),
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	// What the registry holds, as a script reads it.
	var ls inspect.LsView
	if err := json.Unmarshal([]byte(rollcall(t, nil, "ls", "-o", "json", "-endpoints", d.endpoint)), &ls); err != nil {
		t.Fatalf("rollcall ls -o json: %v", err)
	}
	if len(ls.Services) != 1 || ls.Services[0].Name != "demo" || len(ls.Services[0].Instances) != 1 {
		t.Fatalf("rollcall ls -o json: services %+v, want demo with one instance", ls.Services)
	}
	demo := ls.Services[0].Instances[0]
	if demo.TTL == nil || *demo.TTL <= 0 {
		t.Errorf("demo instance %+v: want a live lease", demo)
	}
	var want []string
	for _, nw := range []string{"public"} {
		want = append(want, demo.Addrs[nw]...)
	}
	if len(want) == 0 {
		t.Fatalf("demo instance %+v has no public address", demo)
	}
	slices.Sort(want)

	t.Run("DNS answers the demo name with its addresses", func(t *testing.T) {
		for _, netw := range []string{"udp", "tcp"} {
			var got []string
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
				r := testkit.Query(t, netw, d.dnsAddr, "", "demo."+zone, qt)
				if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
					t.Fatalf("%s %s: rcode %s, aa %v", netw, dns.TypeToString[qt], dns.RcodeToString[r.Rcode], r.Authoritative)
				}
				got = append(got, testkit.Addrs(r.Answer)...)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("over %s demo.%s is %v, rollcall ls says %v", netw, zone, got, want)
			}
		}
		r := testkit.Query(t, "udp", d.dnsAddr, "", "nothing."+zone, dns.TypeA)
		if r.Rcode != dns.RcodeNameError {
			t.Errorf("unknown name: rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
		}
	})

	t.Run("ls table, endpoints from the environment", func(t *testing.T) {
		out := rollcall(t, []string{"ROLLCALL_ENDPOINTS=" + d.endpoint}, "ls")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "SERVICE") {
			t.Fatalf("rollcall ls printed:\n%s\nwant a header and one row", out)
		}
		row := strings.Fields(lines[1])
		if row[0] != "demo" || row[1] != demo.Host || !strings.Contains(lines[1], "public="+strings.Join(demo.Addrs["public"], ",")) {
			t.Errorf("rollcall ls row %q: want demo on %s with its addresses", lines[1], demo.Host)
		}
	})

	t.Run("ls of named services", func(t *testing.T) {
		if out := rollcall(t, nil, "ls", "-endpoints", d.endpoint, "demo"); !strings.Contains(out, "demo") {
			t.Errorf("rollcall ls demo:\n%s", out)
		}
		cmd := exec.Command(testkit.Binary(t, "rollcall"), "ls", "-endpoints", d.endpoint, "demo", "nosuch")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "not registered: nosuch") {
			t.Errorf("rollcall ls demo nosuch: %v, want exit 1 naming nosuch\n%s", err, out)
		}
	})

	t.Run("status counts a malformed key and shows the host's lease", func(t *testing.T) {
		cli, err := etcdconn.New(etcdconn.Config{Endpoints: []string{d.endpoint}})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		testkit.Put(t, cli, "/rollcall/hosts/Not_A_Host/host", "{garbage")
		var st inspect.StatusView
		if err := json.Unmarshal([]byte(rollcall(t, nil, "status", "-o", "json", "-endpoints", d.endpoint)), &st); err != nil {
			t.Fatalf("rollcall status -o json: %v", err)
		}
		if st.Counts.Skipped != 1 || st.Counts.Services != 1 || len(st.Hosts) != 1 {
			t.Fatalf("status counts %+v hosts %+v: want one host, one service, one skipped key", st.Counts, st.Hosts)
		}
		if h := st.Hosts[0]; h.Name != demo.Host || !h.Record || h.GrantedTTL != 10 || h.TTL == nil || *h.TTL <= 0 {
			t.Errorf("status host %+v: want %s with a live 10s lease", h, demo.Host)
		}
		table := rollcall(t, nil, "status", "-endpoints", d.endpoint)
		for _, want := range []string{"HOST", demo.Host, "/10s", "malformed keys skipped: 1", "/rollcall/hosts/Not_A_Host/host"} {
			if !strings.Contains(table, want) {
				t.Errorf("rollcall status lacks %q:\n%s", want, table)
			}
		}
		// The DNS side skipped it too, and still answers.
		if r := testkit.Query(t, "udp", d.dnsAddr, "", "demo."+zone, dns.TypeA); r.Rcode != dns.RcodeSuccess {
			t.Errorf("after a malformed key: rcode %s", dns.RcodeToString[r.Rcode])
		}
	})

	d.interrupt(t)

	// Again on the same folder: etcd restarts from its data (the malformed
	// key, written without a lease, is still there), the agent registers
	// afresh, and its first run's lease is gone.
	d = startDev(t, dataDir, ports, nil, nil)
	var st inspect.StatusView
	if err := json.Unmarshal([]byte(rollcall(t, nil, "status", "-o", "json", "-endpoints", d.endpoint)), &st); err != nil {
		t.Fatalf("rollcall status -o json: %v", err)
	}
	if st.Counts.Skipped != 1 || st.Counts.Instances != 1 || len(st.Hosts) != 1 || st.Hosts[0].Lease == demo.Lease {
		t.Errorf("second run: counts %+v hosts %+v: want the kept malformed key and one instance on a new lease (first run's was %s)",
			st.Counts, st.Hosts, demo.Lease)
	}
	d.interrupt(t)
}

// TestDevPortTaken: with a port in use, `rollcall dev` names the port and
// the flag that moves it, exits non-zero, and starts nothing (its data
// folder is not even created).
func TestDevPortTaken(t *testing.T) {
	tests := []struct {
		name  string
		netw  string
		port  func(devPorts) int
		flag  string
		where string
	}{
		{name: "etcd client port", netw: "tcp", port: func(p devPorts) int { return p.etcd }, flag: "-etcd-port", where: "etcd client"},
		{name: "etcd peer port", netw: "tcp", port: func(p devPorts) int { return p.peer }, flag: "-etcd-peer-port", where: "etcd peer"},
		{name: "DNS port over UDP", netw: "udp", port: func(p devPorts) int { return p.dns }, flag: "-dns-addr", where: "DNS (UDP)"},
		{name: "DNS port over TCP", netw: "tcp", port: func(p devPorts) int { return p.dns }, flag: "-dns-addr", where: "DNS (TCP)"},
		{name: "HTTP port", netw: "tcp", port: func(p devPorts) int { return p.http }, flag: "-http-addr", where: "HTTP API and status page"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ports := newDevPorts(t)
			addr := "127.0.0.1:" + strconv.Itoa(tc.port(ports))
			if tc.netw == "udp" {
				pc, err := net.ListenPacket("udp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
			} else {
				l, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
			}
			dataDir := filepath.Join(t.TempDir(), "dev")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, testkit.Binary(t, "rollcall"), ports.args(dataDir)...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("rollcall dev with %s taken: %v, want a non-zero exit\n%s", addr, err, out)
			}
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Fatalf("rollcall dev was killed (%v), want it to exit on its own\n%s", ws.Signal(), out)
			}
			msg := string(out)
			for _, want := range []string{"port " + strconv.Itoa(tc.port(ports)), tc.where, tc.flag} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("data folder %s exists (%v): rollcall dev started something before checking ports", dataDir, err)
			}
		})
	}
}
