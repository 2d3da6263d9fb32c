package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// LoadResult is one load run against one server.
type LoadResult struct {
	Sent, Completed, Lost int64
	QPS                   float64
	RespSize              int // average response size in bytes (dnsperf only)
	Rcodes                map[string]int64
	Lat                   *Histogram
	Tool                  string // "dnsperf" or "go"
}

// LoadSpec says how to load a server.
type LoadSpec struct {
	Addr      string        // host:port
	QueryFile string        // dnsperf input
	Names     []string      // the same names, for the Go load generator
	Duration  time.Duration // how long to send
	Clients   int           // dnsperf -c (sockets)
	Outstand  int           // dnsperf -q (queries in flight)
	Pin       Pinning
	Dir       string // where dnsperf's per-query output goes
	UseGo     bool   // use the Go load generator even if dnsperf exists
	Rate      int    // queries per second to send, 0 for as fast as answered
}

// haveDNSPerf reports whether dnsperf is on PATH.
func haveDNSPerf() bool {
	_, err := exec.LookPath("dnsperf")
	return err == nil
}

// RunLoad sends the query mix at the server for spec.Duration with dnsperf
// (or, when it is absent, a Go UDP loop) and returns throughput, response
// codes and the latency of every answered query.
func RunLoad(ctx context.Context, spec LoadSpec) (*LoadResult, error) {
	if spec.UseGo || !haveDNSPerf() {
		return runGoLoad(ctx, spec)
	}
	return runDNSPerf(ctx, spec)
}

// runDNSPerf runs dnsperf in verbose mode: it prints every answered query
// with its rcode and latency, which gives percentiles (dnsperf's summary has
// only the mean and standard deviation). The output goes to a file and is
// parsed afterwards, so parsing takes no CPU during the run.
func runDNSPerf(ctx context.Context, spec LoadSpec) (*LoadResult, error) {
	host, port, _ := strings.Cut(spec.Addr, ":")
	secs := strconv.FormatFloat(spec.Duration.Seconds(), 'f', 1, 64)
	argv := spec.Pin.wrap(spec.Pin.ClientCPU, []string{"dnsperf",
		"-s", host, "-p", port, "-d", spec.QueryFile, "-l", secs,
		"-c", strconv.Itoa(spec.Clients), "-q", strconv.Itoa(spec.Outstand),
		"-T", "1", "-t", "2", "-v"})
	if spec.Rate > 0 {
		argv = append(argv, "-Q", strconv.Itoa(spec.Rate))
	}
	out, err := os.CreateTemp(spec.Dir, "dnsperf-*.out")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = out
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, stderr.String())
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	r, err := parseDNSPerf(out)
	if err != nil {
		return nil, fmt.Errorf("parse dnsperf output: %w", err)
	}
	return r, nil
}

// parseDNSPerf reads dnsperf -v output: "> RCODE name type latency" per
// query, then the statistics block.
func parseDNSPerf(rd io.Reader) (*LoadResult, error) {
	r := &LoadResult{Rcodes: map[string]int64{}, Lat: NewHistogram(), Tool: "dnsperf"}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sawStats := false
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "> "); ok {
			f := strings.Fields(rest)
			if len(f) < 4 {
				continue
			}
			if f[0] == "T" || f[0] == "I" { // timed out, interrupted
				continue
			}
			r.Rcodes[f[0]]++
			if sec, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				r.Lat.Add(time.Duration(sec * float64(time.Second)))
			}
			continue
		}
		key, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		first := strings.Fields(val)
		if len(first) == 0 {
			continue
		}
		switch key {
		case "Queries sent":
			r.Sent, _ = strconv.ParseInt(first[0], 10, 64)
			sawStats = true
		case "Queries completed":
			r.Completed, _ = strconv.ParseInt(first[0], 10, 64)
		case "Queries lost":
			r.Lost, _ = strconv.ParseInt(first[0], 10, 64)
		case "Queries per second":
			r.QPS, _ = strconv.ParseFloat(first[0], 64)
		case "Average packet size":
			// "request 39, response 123"
			if _, resp, ok := strings.Cut(val, "response"); ok {
				r.RespSize, _ = strconv.Atoi(strings.TrimSpace(resp))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !sawStats {
		return nil, fmt.Errorf("no statistics in dnsperf output")
	}
	return r, nil
}

// runGoLoad is the fallback load generator: spec.Clients goroutines, each
// with its own UDP socket and one query in flight, cycling through the
// names. It is slower than dnsperf (and shares the client CPU with this
// program) but measures the same things.
func runGoLoad(ctx context.Context, spec LoadSpec) (*LoadResult, error) {
	if len(spec.Names) == 0 {
		return nil, fmt.Errorf("no query names for the Go load generator")
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Duration)
	defer cancel()
	var (
		mu   sync.Mutex
		res  = &LoadResult{Rcodes: map[string]int64{}, Lat: NewHistogram(), Tool: "go"}
		sent atomic.Int64
		wg   sync.WaitGroup
	)
	clients := max(1, spec.Clients)
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := dns.Dial("udp", spec.Addr)
			if err != nil {
				return
			}
			defer conn.Close()
			lat := NewHistogram()
			rc := map[string]int64{}
			var done, lost int64
			m := new(dns.Msg)
			var gap time.Duration // between sends of this goroutine
			if spec.Rate > 0 {
				gap = time.Duration(float64(time.Second) * float64(clients) / float64(spec.Rate))
			}
			next := time.Now()
			for i := c; ctx.Err() == nil; i += clients {
				if gap > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(gap)
				}
				m.SetQuestion(spec.Names[i%len(spec.Names)], dns.TypeA)
				sent.Add(1)
				t0 := time.Now()
				_ = conn.SetDeadline(t0.Add(2 * time.Second))
				if err := conn.WriteMsg(m); err != nil {
					lost++
					continue
				}
				r, err := conn.ReadMsg()
				if err != nil || r.Id != m.Id {
					lost++
					continue
				}
				lat.Add(time.Since(t0))
				rc[dns.RcodeToString[r.Rcode]]++
				done++
			}
			mu.Lock()
			defer mu.Unlock()
			res.Lat.Merge(lat)
			for k, v := range rc {
				res.Rcodes[k] += v
			}
			res.Completed += done
			res.Lost += lost
		}()
	}
	wg.Wait()
	res.Sent = sent.Load()
	res.QPS = float64(res.Completed) / time.Since(start).Seconds()
	return res, nil
}

// writeQueryFile writes the dnsperf input for qs into dir.
func writeQueryFile(dir, name string, qs []Query) (string, error) {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(DNSPerfInput(qs)), 0o644); err != nil {
		return "", fmt.Errorf("write query file: %w", err)
	}
	return p, nil
}
