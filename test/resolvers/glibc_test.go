package resolvers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// glibc runs getent (glibc's getaddrinfo, with libnss_dns) against one
// resolver. glibc takes its server from /etc/resolv.conf, port 53 only, so
// getent runs in a private mount namespace (unshare --mount; with
// --map-root-user when not root) where a resolv.conf naming a relay is
// bind-mounted over /etc/resolv.conf: the machine's own file is never
// changed. The relay listens on port 53 of an address of its own in
// 127.0.0.0/8 and passes datagrams and TCP streams to the resolver
// unchanged (resolvers from Debian's packages will not all bind an
// address lo does not list, and port 53 of 127.0.0.1 may be taken).
type glibc struct {
	getent, unshare string
	resolvConf      string
	nsswitch        string // "hosts: dns" only, so /etc/hosts or mDNS cannot answer; "" when the machine has none
	root            bool
}

// newGlibc sets up getent for r, or skips the test saying what is missing.
func newGlibc(t *testing.T, r *resolver) *glibc {
	t.Helper()
	g := &glibc{root: os.Geteuid() == 0}
	var err error
	if g.getent, err = exec.LookPath("getent"); err != nil {
		t.Skip("getent is not installed: glibc's resolver is not checked")
	}
	if g.unshare, err = exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) is not installed: glibc's resolver is not checked")
	}
	// getent ahostsv4 asks getaddrinfo with AI_ADDRCONFIG, which returns no
	// IPv4 address at all on a machine whose only IPv4 address is loopback
	// (a bare network namespace).
	if !hasNonLoopbackIPv4() {
		t.Skip("no non-loopback IPv4 address here, so getaddrinfo(AI_ADDRCONFIG) returns no IPv4 address: glibc's resolver is not checked")
	}
	if _, err := os.Stat("/etc/resolv.conf"); err != nil {
		t.Skipf("no /etc/resolv.conf to bind-mount over (%v): glibc's resolver is not checked", err)
	}
	ip := startRelay(t, r.addr)
	dir := t.TempDir()
	// attempts and timeout keep a lost datagram from stalling getent long.
	g.resolvConf = writeFile(t, dir, "resolv.conf", fmt.Sprintf("nameserver %s\noptions attempts:3 timeout:2\n", ip))
	if _, err := os.Stat("/etc/nsswitch.conf"); err == nil {
		g.nsswitch = writeFile(t, dir, "nsswitch.conf", "hosts: dns\n")
	}
	// The namespace trick must work here (user namespaces may be off).
	out, err := g.run("cat", "/etc/resolv.conf")
	if err != nil || !strings.Contains(string(out), ip) {
		t.Skipf("cannot bind-mount a private /etc/resolv.conf in a mount namespace (%v: %s): glibc's resolver is not checked", err, bytes.TrimSpace(out))
	}
	return g
}

func hasNonLoopbackIPv4() bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return true
		}
	}
	return false
}

// run runs argv in the private mount namespace and returns its output.
func (g *glibc) run(argv ...string) ([]byte, error) {
	script := `mount --bind "$1" /etc/resolv.conf || exit 99
if [ -n "$2" ]; then mount --bind "$2" /etc/nsswitch.conf || exit 99; fi
shift 2
exec "$@"`
	args := []string{"--mount"}
	if !g.root {
		args = append(args, "--map-root-user")
	}
	args = append(args, "--", "sh", "-c", script, "sh", g.resolvConf, g.nsswitch)
	args = append(args, argv...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, g.unshare, args...).CombinedOutput()
}

// ahostsV4 runs `getent ahostsv4 name` and returns the addresses (sorted,
// unique: getent prints each once per socket type) and getent's exit code.
func (g *glibc) ahostsV4(t *testing.T, name string) ([]string, int) {
	t.Helper()
	out, err := g.run(g.getent, "ahostsv4", name)
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("getent ahostsv4 %s: %v", name, err)
		}
		code = ee.ExitCode()
		if code == 99 {
			t.Fatalf("getent ahostsv4 %s: bind mount failed: %s", name, out)
		}
	}
	seen := map[string]bool{}
	var addrs []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && net.ParseIP(f[0]) != nil && !seen[f[0]] {
			seen[f[0]] = true
			addrs = append(addrs, f[0])
		}
	}
	sort.Strings(addrs)
	return addrs, code
}

// startRelay listens on port 53 (UDP and TCP) of a random 127.53.x.y and
// passes everything to target; it returns the address. It skips the test
// when port 53 cannot be bound (not root, no CAP_NET_BIND_SERVICE).
func startRelay(t *testing.T, target string) string {
	t.Helper()
	var (
		ip  string
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for try := 0; try < 20; try++ {
		ip = fmt.Sprintf("127.53.%d.%d", rand.IntN(254)+1, rand.IntN(254)+1)
		if pc, err = net.ListenPacket("udp", net.JoinHostPort(ip, "53")); err != nil {
			if errors.Is(err, syscall.EACCES) {
				t.Skipf("cannot listen on port 53 for glibc's resolver (%v): glibc's resolver is not checked", err)
			}
			continue
		}
		if ln, err = net.Listen("tcp", net.JoinHostPort(ip, "53")); err != nil {
			pc.Close()
			continue
		}
		break
	}
	if ln == nil {
		t.Skipf("no free port 53 on 127.53.0.0/16 in 20 tries (%v): glibc's resolver is not checked", err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{} // open TCP connections, closed at the end
	)
	t.Cleanup(func() {
		pc.Close()
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := bytes.Clone(buf[:n])
			wg.Go(func() {
				up, err := net.Dial("udp", target)
				if err != nil {
					return
				}
				defer up.Close()
				_ = up.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := up.Write(q); err != nil {
					return
				}
				resp := make([]byte, 65535)
				n, err := up.Read(resp)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo(resp[:n], from)
			})
		}
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				up, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				mu.Lock()
				conns[up] = true
				mu.Unlock()
				defer func() {
					mu.Lock()
					delete(conns, up)
					mu.Unlock()
					up.Close()
				}()
				deadline := time.Now().Add(20 * time.Second)
				_ = c.SetDeadline(deadline)
				_ = up.SetDeadline(deadline)
				done := make(chan struct{})
				go func() {
					_, _ = io.Copy(up, c)
					_ = up.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				_, _ = io.Copy(c, up)
				_ = c.(*net.TCPConn).CloseWrite()
				<-done
			})
		}
	})
	return ip
}
