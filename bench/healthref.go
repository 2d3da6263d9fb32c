package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rollcall/rollcall/test/testkit"
)

// httpClientEnv, set to "RATE URL", makes this program a bare Go HTTP client
// instead of the benchmark: the yardstick beside the agent's CPU per check
// run (health.go). Started as its own process, its CPU time is read from
// /proc as the agent's is, so the two are measured the same way.
const httpClientEnv = "ROLLCALL_BENCH_HTTP_CLIENT"

// httpClientMode reports whether this process was started as the yardstick
// client.
func httpClientMode() bool { return os.Getenv(httpClientEnv) != "" }

// runHTTPClient is the yardstick client: it GETs URL RATE times a second,
// each on a new connection with no proxy and no compression, as the agent's
// http checks do, reading up to 512 bytes of each body, until it is killed.
// It returns an exit code only when it cannot run.
func runHTTPClient() int {
	rateText, url, _ := strings.Cut(os.Getenv(httpClientEnv), " ")
	rate, err := strconv.ParseFloat(rateText, 64)
	if err != nil || rate <= 0 || url == "" {
		fmt.Fprintf(os.Stderr, "bench: %s=%q: want RATE URL\n", httpClientEnv, os.Getenv(httpClientEnv))
		return 2
	}
	cl := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       2 * time.Second,
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for range tick.C {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
		req.Header.Set("User-Agent", "rollcall-bench yardstick")
		if resp, err := cl.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 512))
			resp.Body.Close()
		}
	}
	return 0
}

// startHTTPClient starts this program again as the yardstick client; it is
// killed when the measurement ends, or with this process.
func startHTTPClient(atEnd *cleanups, rate float64, url string) (*testkit.Process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("yardstick client: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%v %s", httpClientEnv, rate, url))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	proc, err := testkit.StartProcess(cmd)
	if err != nil {
		return nil, fmt.Errorf("yardstick client: %w", err)
	}
	atEnd.add(proc.Kill)
	return proc, nil
}
