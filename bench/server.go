package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rollcall/rollcall/test/testkit"
)

// Pinning says which CPUs the server and the load generator run on. Every
// contender gets the same: CoreDNS alone on ServerCPU with GOMAXPROCS=1,
// dnsperf (and this program, with its embedded etcd) on ClientCPU. Empty
// strings mean no pinning (the smoke test, or a 1-CPU machine).
type Pinning struct {
	ServerCPU, ClientCPU string
}

// Enabled reports whether processes are pinned.
func (p Pinning) Enabled() bool { return p.ServerCPU != "" }

// wrap prefixes argv with taskset when pinning; taskset execs the program,
// so the process id is the program's.
func (p Pinning) wrap(cpu string, argv []string) []string {
	if cpu == "" {
		return argv
	}
	return append([]string{"taskset", "-c", cpu}, argv...)
}

// Server is one bin/coredns process serving one Corefile.
type Server struct {
	Name      string
	Addr      string // DNS address, host:port
	ReadyURL  string // the ready plugin's /ready
	PprofAddr string // the pprof plugin's address, "" if none
	Dir       string
	proc      *testkit.Process
	Started   time.Time
}

// serverPorts are the ports one server block listens on.
type serverPorts struct {
	DNS, Ready, Pprof int
}

// corefileHead is the common start of every contender's server block: the
// same plugins around the one under test, so only that one differs.
func corefileHead(p serverPorts) string {
	return fmt.Sprintf("%s:%d {\n    bind 127.0.0.1\n    ready 127.0.0.1:%d\n    pprof 127.0.0.1:%d\n",
		Zone, p.DNS, p.Ready, p.Pprof)
}

// StartServer starts bin/coredns with corefile in dir, pinned per pin.
func StartServer(name, bin, dir, corefile string, p serverPorts, pin Pinning) (*Server, error) {
	return startServer(name, bin, dir, corefile, p, pin, false)
}

// startServer is StartServer; with discardStdout, CoreDNS's standard output
// goes to /dev/null: the log plugin writes a line there per query, which
// would fill the process's output buffer. Its standard error, where CoreDNS
// says why it cannot start, is kept.
func startServer(name, bin, dir, corefile string, p serverPorts, pin Pinning, discardStdout bool) (*Server, error) {
	return startServerEnv(name, bin, dir, corefile, p, pin, discardStdout, nil)
}

// startServerEnv is startServer with extra environment variables (NAME=value)
// for CoreDNS, such as a unit file's GOMEMLIMIT.
func startServerEnv(name, bin, dir, corefile string, p serverPorts, pin Pinning, discardStdout bool, env []string) (*Server, error) {
	conf := filepath.Join(dir, name+".Corefile")
	if err := os.WriteFile(conf, []byte(corefile), 0o644); err != nil {
		return nil, fmt.Errorf("write Corefile of %s: %w", name, err)
	}
	argv := pin.wrap(pin.ServerCPU, []string{filepath.Join(bin, "coredns"), "-conf", conf, "-quiet"})
	if discardStdout {
		// sh and taskset exec what follows them: the process id stays
		// CoreDNS's, whose CPU time the parts read.
		argv = append([]string{"sh", "-c", `exec "$@" >/dev/null`, "coredns"}, argv...)
	}
	s := &Server{
		Name:      name,
		Addr:      "127.0.0.1:" + strconv.Itoa(p.DNS),
		ReadyURL:  fmt.Sprintf("http://127.0.0.1:%d/ready", p.Ready),
		PprofAddr: "127.0.0.1:" + strconv.Itoa(p.Pprof),
		Dir:       dir,
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	if pin.Enabled() {
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1")
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s.Started = time.Now()
	var err error
	if s.proc, err = testkit.StartProcess(cmd); err != nil {
		return nil, fmt.Errorf("coredns for %s: %w", name, err)
	}
	return s, nil
}

// WaitReady polls the ready endpoint until it answers 200, and returns when
// it did (the process start is s.Started).
func (s *Server) WaitReady(ctx context.Context, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.proc.Done():
			return time.Time{}, fmt.Errorf("coredns for %s exited: %s", s.Name, s.Log())
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.ReadyURL, nil)
		if resp, err := cl.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("coredns for %s not ready after %v: %s", s.Name, timeout, s.Log())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// WaitAnswering waits until the server answers a DNS query at all: the
// ready plugin can report ready a moment before the DNS listener is up.
func (s *Server) WaitAnswering(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := exchange(qctx, s.Addr, Zone)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("coredns for %s is ready but does not answer DNS at %s: %w", s.Name, s.Addr, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Pid is the process id of the server.
func (s *Server) Pid() int { return s.proc.Cmd.Process.Pid }

// RSS returns the server's resident memory (VmRSS) in bytes.
func (s *Server) RSS() (int64, error) { return procRSS(s.Pid()) }

// procRSS reads VmRSS from /proc/<pid>/status.
func procRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return parseKB(rest)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// CPUTime returns the user plus system CPU time the server has used, all
// threads together (/proc/<pid>/stat, in clock ticks of 10 ms).
func (s *Server) CPUTime() (time.Duration, error) { return procCPU(s.Pid()) }

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: %w", pid, err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU takes utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line; the command name (field 2) may hold spaces, so
// fields are counted after its closing parenthesis.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat line")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat line")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed utime/stime in /proc stat line")
	}
	return time.Duration(ut+st) * clockTick, nil
}

// parseKB parses "  123456 kB" into bytes.
func parseKB(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("unexpected memory field %q", s)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory field %q: %w", s, err)
	}
	return n * 1024, nil
}

// Log returns the server's output so far (for error messages).
func (s *Server) Log() string {
	return s.proc.Out.Tail(2000)
}

// Stop stops the server (SIGTERM, then SIGKILL after 5s).
func (s *Server) Stop() {
	if s == nil {
		return
	}
	s.proc.Stop(5 * time.Second)
}

// Profile takes a CPU profile of the server for d through its pprof plugin
// and writes it to path.
func (s *Server) Profile(ctx context.Context, d time.Duration, path string) error {
	return s.fetchPprof(ctx, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), d+30*time.Second, path)
}

// HeapProfile writes the server's heap profile (after a GC) to path.
func (s *Server) HeapProfile(ctx context.Context, path string) error {
	return s.fetchPprof(ctx, "heap?gc=1", 30*time.Second, path)
}

// LiveHeap returns the bytes of heap the server holds after a garbage
// collection (runtime.MemStats.HeapAlloc): its data, without the garbage
// and free memory its resident size also counts.
func (s *Server) LiveHeap(ctx context.Context) (int64, error) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("rollcall-bench-heap-%d.txt", os.Getpid()))
	defer os.Remove(path)
	if err := s.fetchPprof(ctx, "heap?gc=1&debug=1", 30*time.Second, path); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("heap of %s: no HeapAlloc in the pprof text", s.Name)
}

func (s *Server) fetchPprof(ctx context.Context, what string, timeout time.Duration, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/%s", s.PprofAddr, what)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return fmt.Errorf("pprof %s of %s: %w", what, s.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof %s of %s: HTTP %s", what, s.Name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.ReadFrom(resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("pprof %s of %s: %w", what, s.Name, err)
	}
	return f.Close()
}

// pprofPeek runs `go tool pprof -peek REGEX` and returns the part from the
// table header on.
func pprofPeek(ctx context.Context, cfg Config, prof, regex string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-peek", regex, filepath.Join(cfg.Bin, "coredns"), prof).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof -peek: %w: %s", err, out)
	}
	s := string(out)
	if i := strings.Index(s, "      flat"); i >= 0 {
		s = s[i:]
	}
	return s, nil
}

// pprofTop runs `go tool pprof -top` on a profile of bin/coredns, keeping
// a copy in cfg.KeepProfiles when set.
func pprofTop(ctx context.Context, cfg Config, prof string, extra ...string) (string, error) {
	if cfg.KeepProfiles != "" {
		if err := os.MkdirAll(cfg.KeepProfiles, 0o755); err == nil {
			if b, err := os.ReadFile(prof); err == nil {
				_ = os.WriteFile(filepath.Join(cfg.KeepProfiles, filepath.Base(prof)), b, 0o644)
			}
		}
	}
	args := append([]string{"tool", "pprof", "-top", "-nodecount=25"}, extra...)
	args = append(args, filepath.Join(cfg.Bin, "coredns"), prof)
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w: %s", err, out)
	}
	return string(out), nil
}
