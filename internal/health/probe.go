package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rollcall/rollcall/registry"
)

// run runs one check once, within its timeout, and returns its result.
func run(ctx context.Context, spec Spec) Result {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	var st registry.State
	var out string
	switch spec.Kind {
	case KindHTTP:
		st, out = probeHTTP(ctx, spec.Target)
	case KindTCP:
		st, out = probeTCP(ctx, spec.Target)
	case KindGRPC:
		st, out = probeGRPC(ctx, spec.Target)
	case KindExec:
		st, out = probeExec(ctx, spec.Argv)
	default:
		st, out = registry.StateCritical, fmt.Sprintf("unknown check kind %q", spec.Kind)
	}
	d := time.Since(start)
	if st == registry.StateCritical && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		out = joinOutput(fmt.Sprintf("timed out after %s", spec.Timeout), out)
	}
	return Result{State: st, Output: excerpt(out), Duration: d, At: start}
}

// dialer connects to IP literals only: a check never resolves a name
// (Validate refuses them; this refuses what slipped through), so that a
// check of a service cannot depend on the DNS rollcall itself serves.
var dialer = &net.Dialer{}

func dialIP(ctx context.Context, network, addr string) (net.Conn, error) {
	if _, err := netip.ParseAddrPort(addr); err != nil {
		return nil, fmt.Errorf("dial %s: not an IP:port (checks never resolve names)", addr)
	}
	return dialer.DialContext(ctx, network, addr)
}

// httpClient is shared by every http check. Keep-alives are off: each run
// makes a new connection, as a new client would, so a server that stopped
// accepting fails its check rather than passing on an old connection; and
// 200 checks hold no idle connections between runs. It uses no proxy from
// the environment (a check asks the service itself), follows no
// redirect (3xx is critical: the checked URL should answer), and does not
// verify https certificates: targets are IP addresses, mostly loopback,
// which certificates seldom name, and the check asks whether the service
// answers, sending it nothing secret.
var httpClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                  nil,
		DialContext:            dialIP,
		DisableKeepAlives:      true,
		TLSClientConfig:        &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// userAgent names the checker in the checked service's logs.
const userAgent = "rollcall-servicereg health check"

// probeHTTP GETs url: 2xx is passing, 429 (too many requests: serving,
// but wants less) warning, anything else critical.
func probeHTTP(ctx context.Context, url string) (registry.State, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return registry.StateCritical, err.Error()
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := httpClient.Do(req)
	if err != nil {
		return registry.StateCritical, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxOutput))
	out := "HTTP " + resp.Status
	if b := strings.TrimSpace(string(body)); b != "" {
		out += ": " + b
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return registry.StatePassing, out
	case resp.StatusCode == http.StatusTooManyRequests:
		return registry.StateWarning, out
	}
	return registry.StateCritical, out
}

// probeTCP connects to addr: a connection made is passing.
func probeTCP(ctx context.Context, addr string) (registry.State, string) {
	conn, err := dialIP(ctx, "tcp", addr)
	if err != nil {
		return registry.StateCritical, err.Error()
	}
	conn.Close()
	return registry.StatePassing, "connected to " + addr
}

// probeGRPC asks the grpc.health.v1 Health service at target
// ("IP:port" or "IP:port/service") about the service: SERVING is passing,
// anything else critical. One connection per run, closed after it: like
// http, each run tests that the server still accepts.
func probeGRPC(ctx context.Context, target string) (registry.State, string) {
	addr, name, _ := strings.Cut(target, "/")
	// passthrough: the address goes to the dialer as it is, past gRPC's
	// own name resolution.
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return dialIP(ctx, "tcp", a) }),
		grpc.WithUserAgent(userAgent))
	if err != nil {
		return registry.StateCritical, err.Error()
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: name})
	if err != nil {
		return registry.StateCritical, err.Error()
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return registry.StateCritical, s.String()
	}
	return registry.StatePassing, healthpb.HealthCheckResponse_SERVING.String()
}

// execWaitDelay bounds the wait for a check's output pipe once its
// process group is dead: a process that left the group (setsid) and kept
// the pipe open must not hold the check.
const execWaitDelay = 500 * time.Millisecond

// probeExec runs argv without a shell in a process group of its own: exit
// 0 is passing, 1 warning, anything else (a signal, a timeout) critical.
// When the program exits, or at the timeout, the whole group is killed,
// so whatever a script left running in the background dies with the run.
func probeExec(ctx context.Context, argv []string) (registry.State, string) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Dir = "/"
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = execWaitDelay
	if err := cmd.Start(); err != nil {
		return registry.StateCritical, err.Error()
	}
	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		waitExited(pgid)
	}()
	timedOut := false
	select {
	case <-exited:
	case <-ctx.Done():
		timedOut = true
	}
	// The leader is not reaped yet (waitExited does not reap), so neither
	// its process ID nor its group's can name another process: killing
	// both is safe. The leader is killed by its ID too in case it left
	// its group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	<-exited
	err := cmd.Wait()
	text := out.String()
	if timedOut {
		return registry.StateCritical, text
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return registry.StatePassing, text
	case errors.Is(err, exec.ErrWaitDelay):
		// It exited 0, but something it started outside its process
		// group (setsid) still holds its output: the exit status stands.
		return registry.StatePassing, strings.TrimSpace(text + " (a process it started outside its process group still holds its output)")
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return registry.StateWarning, text
	case errors.As(err, &exit):
		return registry.StateCritical, joinOutput(exit.String(), text)
	}
	return registry.StateCritical, joinOutput(err.Error(), text)
}

// joinOutput puts what happened before what the check printed, leaving
// out the separator when it printed nothing: "exit status 2", not
// "exit status 2:".
func joinOutput(what, printed string) string {
	if printed = strings.TrimSpace(printed); printed == "" {
		return what
	}
	return what + ": " + printed
}

// waitExited waits until process pid has exited, without reaping it
// (waitid with WNOWAIT): cmd.Wait reaps it afterwards.
func waitExited(pid int) {
	const pPID, wNOWAIT = 1, 0x1000000 // P_PID and WNOWAIT of <sys/wait.h>
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), 0, syscall.WEXITED|wNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			return
		}
	}
}

// limitedBuffer keeps the first MaxOutput bytes written to it and drops
// the rest, so a chatty check cannot grow the agent.
type limitedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := MaxOutput - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
