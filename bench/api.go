package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// The api part measures the plugin's `http` option (plugin/rollcall/README.md,
// "HTTP") in the process that serves DNS: how many requests per second
// /v1/services/{service} answers, how soon a blocking query wakes after an
// etcd write, and whether DNS keeps its throughput while the API is used.
// The API reads the same index as DNS and nothing of it runs on the DNS
// query path, so DNS should lose no more than the CPU the API itself takes
// on the server's one CPU.

// apiService is the service the wake-up runs change: not in the data sets.
const apiService = "apiprop"

// Load of the API.
const (
	apiClients = 10 // keep-alive HTTP clients of the saturating load
	// apiSteadyRate is the API's "in use" load for the DNS comparison: a
	// few status pages and Prometheus servers are far below it.
	apiSteadyRate = 200
	// apiWaiters are the blocking queries held on each change.
	apiWaiters = 10
)

// apiLoadResult is one run of the HTTP load generator.
type apiLoadResult struct {
	ok, failed int64
	rps        float64
	lat        *Histogram
	firstError string
}

// partAPI measures the HTTP API of a rollcall server with the small data
// set, then DNS beside it.
func partAPI(ctx context.Context, cfg Config, env *Env, atEnd *cleanups) (*Section, []string, error) {
	d := cfg.Small
	sec := &Section{Title: "HTTP API beside DNS (the http option): " + d.String()}
	mix, err := prepareSmallMix(ctx, env, d)
	if err != nil {
		return nil, nil, err
	}
	httpPort, err := testkit.TryFreePort()
	if err != nil {
		return nil, nil, err
	}
	c := apiContender(env.Etcd.ClientURL, httpPort)
	if p := env.missingPlugin(c); p != "" {
		return nil, nil, skipf("plugin %s is not compiled into bin/coredns", p)
	}
	s, err := env.Start(ctx, atEnd, c)
	if err != nil {
		return nil, nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	var problems []string
	sec.Header = []string{"measure", "result", "p50", "p99", "detail"}

	rps, probs := apiThroughput(ctx, cfg, sec, s, base, d)
	problems = append(problems, probs...)
	wake, probs := apiWakeUp(ctx, cfg, env, sec, base, d, atEnd)
	problems = append(problems, probs...)
	ratios, probs := apiBesideDNS(ctx, cfg, env, sec, s, base, d, mix)
	problems = append(problems, probs...)

	sec.Intro = append(sec.Intro, fmt.Sprintf("One bin/coredns serving rollcall (the throughput table's block) with `http` on. "+
		"Requests: %d keep-alive Go clients in this program, each asking GET /v1/services/{service} for the next service in turn "+
		"and reading the whole JSON answer (about %d instances, in the client's view), %v per round, %d rounds. "+
		"Wake-up: %d blocking queries (?index=R&wait=60s) are held on `/v1/services/%s`, then the instance record of that service "+
		"is written; time is from just before the etcd Put to each answer. "+
		"DNS beside the API: the throughput query mix under %s, alone, with the API at %d requests/s, and with the API saturated by the %d clients, "+
		"alternating in each round; the ratios are paired medians of DNS qps against alone. The server has one CPU (when pinned): "+
		"what the API's requests cost comes out of DNS's share, so the saturated ratio is the price of that CPU, not of contention.",
		apiClients, d.PerService, cfg.Duration, cfg.Rounds, apiWaiters, apiService, loadTool(cfg), apiSteadyRate, apiClients))
	if rps > 0 && wake != nil && ratios != nil {
		sec.Summary = append(sec.Summary, fmt.Sprintf("HTTP API: %s requests/s for /v1/services/{service}; a blocking query wakes p50 %s, p99 %s after an etcd write; "+
			"DNS qps with the API at %d requests/s is %s of DNS alone (%s with the API saturated).",
			fmtQPS(rps), fmtDur(percentileOf(wake, 0.5)), fmtDur(percentileOf(wake, 0.99)), apiSteadyRate, fmtRatio(ratios[0]), fmtRatio(ratios[1])))
	}
	return sec, problems, nil
}

// apiContender is the rollcall contender with `http` on httpPort.
func apiContender(endpoint string, httpPort int) Contender {
	c := rollcallContender("rollcall-http", endpoint, smallPrefix)
	base := c.Corefile
	c.Corefile = func(p serverPorts) string {
		return strings.Replace(base(p), "    rollcall {\n", fmt.Sprintf("    rollcall {\n        http 127.0.0.1:%d\n", httpPort), 1)
	}
	return c
}

// loadTool names the DNS load generator in use.
func loadTool(cfg Config) string {
	if haveDNSPerf() && !cfg.GoLoad {
		return "dnsperf"
	}
	return "the Go load generator"
}

// apiThroughput measures /v1/services/{service} requests per second under
// the saturating load, round after round, and adds its row.
func apiThroughput(ctx context.Context, cfg Config, sec *Section, s *Server, base string, d Dataset) (float64, []string) {
	var rates []float64
	var cpu []time.Duration
	lat := NewHistogram()
	var failed int64
	var firstErr string
	for r := 0; r < cfg.Rounds; r++ {
		cpu0, _ := s.CPUTime()
		res := apiLoad(ctx, base, d, cfg.Duration, 0)
		cpu1, _ := s.CPUTime()
		rates = append(rates, res.rps)
		lat.Merge(res.lat)
		failed += res.failed
		if firstErr == "" {
			firstErr = res.firstError
		}
		if res.ok > 0 {
			cpu = append(cpu, (cpu1-cpu0)/time.Duration(res.ok))
		}
		logf("api round %d: %.0f requests/s, p50 %v, p99 %v, failed %d", r+1, res.rps, res.lat.Percentile(0.5), res.lat.Percentile(0.99), res.failed)
	}
	var problems []string
	if failed > 0 {
		problems = append(problems, fmt.Sprintf("api: %d requests failed under load (first: %s)", failed, firstErr))
	}
	sec.Row(fmt.Sprintf("GET /v1/services/{service}, %d keep-alive clients", apiClients), fmtQPS(median(rates))+" requests/s (median)",
		fmtDur(lat.Percentile(0.5)), fmtDur(lat.Percentile(0.99)),
		fmt.Sprintf("server CPU per request %s (median); %d failed", fmtDur(medianDur(cpu)), failed))
	return median(rates), problems
}

// apiLoad runs the HTTP load for d: apiClients keep-alive clients as fast
// as answered, or at rate requests per second in all (0: as fast).
func apiLoad(ctx context.Context, base string, d Dataset, dur time.Duration, rate int) *apiLoadResult {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: apiClients, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	res := &apiLoadResult{lat: NewHistogram()}
	var mu sync.Mutex
	var next atomic.Int64
	var gap time.Duration
	if rate > 0 {
		gap = time.Duration(float64(time.Second) * apiClients / float64(rate))
	}
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < apiClients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := NewHistogram()
			var ok, failed int64
			var firstErr string
			due := time.Now()
			for ctx.Err() == nil {
				if gap > 0 {
					if sleepUntil(ctx, due) != nil {
						break
					}
					due = due.Add(gap)
				}
				svc := d.Service(int(next.Add(1)) % d.Services)
				t0 := time.Now()
				err := getService(ctx, client, base, svc, d.PerService)
				switch {
				case err == nil:
					lat.Add(time.Since(t0))
					ok++
				case ctx.Err() == nil:
					failed++
					if firstErr == "" {
						firstErr = err.Error()
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.lat.Merge(lat)
			res.ok += ok
			res.failed += failed
			if res.firstError == "" {
				res.firstError = firstErr
			}
		}()
	}
	wg.Wait()
	res.rps = float64(res.ok) / time.Since(start).Seconds()
	return res
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// getService asks for one service and checks the answer: 200, the name,
// and want instances.
func getService(ctx context.Context, client *http.Client, base, svc string, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/services/"+svc, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d: %s", svc, resp.StatusCode, firstLine(string(body)))
	}
	var got struct {
		Name      string            `json:"name"`
		Instances []json.RawMessage `json:"instances"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		return fmt.Errorf("%s: %w", svc, err)
	}
	if got.Name != svc || len(got.Instances) != want {
		return fmt.Errorf("%s: name %q with %d instances, want %d", svc, got.Name, len(got.Instances), want)
	}
	return nil
}

// apiWakeUp times blocking queries from an etcd write to their answers,
// over cfg.Changes writes (at most 300), and adds its row.
func apiWakeUp(ctx context.Context, cfg Config, env *Env, sec *Section, base string, d Dataset, atEnd *cleanups) ([]time.Duration, []string) {
	keys := registry.MustKeys(smallPrefix)
	key := keys.Instance(d.Host(0), apiService)
	atEnd.add(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = env.Cli.Delete(dctx, key)
	})
	write := func(i int) (int64, error) {
		ip := addAddr(netip.MustParseAddr("10.201.0.1"), i%60000)
		v, err := registry.EncodeInstance(&registry.Instance{Service: apiService, Host: d.Host(0),
			Addrs: registry.Addrs{registry.PublicNetwork: {ip}, viewNetwork: {ip}}})
		if err != nil {
			return 0, err
		}
		r, err := env.Cli.Put(ctx, key, string(v))
		if err != nil {
			return 0, err
		}
		return r.Header.Revision, nil
	}
	rev, err := write(0)
	if err != nil {
		sec.Row("blocking query wake-up", notMeasured(err.Error()))
		return nil, []string{fmt.Sprintf("api wake-up: %v", err)}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: apiWaiters}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	n := min(cfg.Changes, 300)
	var lat []time.Duration
	for i := 1; i <= n && ctx.Err() == nil; i++ {
		got, next, err := wakeOnce(ctx, client, base, rev, func() (int64, error) { return write(i) })
		if err != nil {
			sec.Row("blocking query wake-up", notMeasured(err.Error()))
			return nil, []string{fmt.Sprintf("api wake-up, change %d: %v", i, err)}
		}
		lat = append(lat, got...)
		rev = next
	}
	if len(lat) == 0 {
		return nil, nil
	}
	sec.Row(fmt.Sprintf("blocking query wake-up after an etcd write, %d queries held per write", apiWaiters),
		fmt.Sprintf("%d wake-ups over %d writes", len(lat), n), fmtDur(percentileOf(lat, 0.5)), fmtDur(percentileOf(lat, 0.99)),
		fmt.Sprintf("p90 %s, max %s", fmtDur(percentileOf(lat, 0.9)), fmtDur(percentileOf(lat, 1))))
	return lat, nil
}

// wakeOnce holds apiWaiters blocking queries at revision rev, writes, and
// returns how long after the write each answered, and the revision written.
func wakeOnce(ctx context.Context, client *http.Client, base string, rev int64, write func() (int64, error)) ([]time.Duration, int64, error) {
	type answer struct {
		at    time.Time
		index int64
		err   error
	}
	// The queries end with this call, whatever happens to the write.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan answer, apiWaiters)
	url := fmt.Sprintf("%s/v1/services/%s?index=%d&wait=60s", base, apiService, rev)
	for w := 0; w < apiWaiters; w++ {
		go func() {
			a := answer{}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err == nil {
				var resp *http.Response
				if resp, err = client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					a.index, err = strconv.ParseInt(resp.Header.Get("X-Rollcall-Index"), 10, 64)
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
			}
			a.at, a.err = time.Now(), err
			answers <- a
		}()
	}
	// The queries reach the server and wait well within this on loopback;
	// one that came late answers at once and still times the change.
	time.Sleep(20 * time.Millisecond)
	t0 := time.Now()
	written, err := write()
	if err != nil {
		return nil, 0, err
	}
	var lat []time.Duration
	var errs []error
	for w := 0; w < apiWaiters; w++ {
		a := <-answers
		switch {
		case a.err != nil:
			errs = append(errs, a.err)
		case a.index < written:
			errs = append(errs, fmt.Errorf("answered at index %d, before the write's %d", a.index, written))
		default:
			lat = append(lat, a.at.Sub(t0))
		}
	}
	return lat, written, errors.Join(errs...)
}

// apiBesideDNS runs the DNS load alone, beside the API at a steady rate and
// beside the saturated API, alternating in each round, adds a row for each
// and returns the paired ratios (steady, saturated) of DNS qps to alone.
func apiBesideDNS(ctx context.Context, cfg Config, env *Env, sec *Section, s *Server, base string, d Dataset, mix *smallMix) ([]float64, []string) {
	names := queryNames(mix.qs)
	if _, err := RunLoad(ctx, loadSpec(cfg, env, s, mix.qfile, names, cfg.Warmup)); err != nil {
		return nil, []string{fmt.Sprintf("api: warm up DNS: %v", err)}
	}
	runs := []struct {
		name string
		rate int // API requests/s beside DNS; -1: none, 0: saturated
	}{{"DNS alone", -1}, {fmt.Sprintf("DNS with the API at %d requests/s", apiSteadyRate), apiSteadyRate}, {"DNS with the API saturated", 0}}
	stats := make([]*runStats, len(runs))
	apiRates := make([][]float64, len(runs))
	for i := range stats {
		stats[i] = newRunStats()
	}
	var problems []string
	for r := 0; r < cfg.Rounds; r++ {
		for i, run := range runs {
			var api *apiLoadResult
			var wg sync.WaitGroup
			if run.rate >= 0 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					api = apiLoad(ctx, base, d, cfg.Duration, run.rate)
				}()
			}
			_, err := loadMeasured(ctx, loadSpec(cfg, env, s, mix.qfile, names, cfg.Duration), s, stats[i])
			wg.Wait()
			if err != nil {
				return nil, append(problems, fmt.Sprintf("api: %s: %v", run.name, err))
			}
			if api != nil {
				apiRates[i] = append(apiRates[i], api.rps)
				if api.failed > 0 {
					problems = append(problems, fmt.Sprintf("api: %s: %d API requests failed (first: %s)", run.name, api.failed, api.firstError))
				}
			}
			logf("api round %d %-40s DNS %8.0f qps", r+1, run.name, stats[i].qps[len(stats[i].qps)-1])
		}
	}
	var ratios []float64
	for i, run := range runs {
		st := stats[i]
		ratio, detail := "1.00x", "the reference"
		if i > 0 {
			pr := pairedRatio(st, stats[0])
			ratios = append(ratios, pr)
			ratio = fmtRatio(pr)
			detail = fmt.Sprintf("API answered %s requests/s (median)", fmtQPS(median(apiRates[i])))
		}
		sec.Row(run.name, fmt.Sprintf("%s qps (median), %s of alone", fmtQPS(median(st.qps)), ratio),
			fmtDur(medianDur(st.p50)), fmtDur(medianDur(st.p99)),
			fmt.Sprintf("%s; server CPU per query %s; not NOERROR %d", detail, fmtDur(medianDur(st.cpuPerQuery)), st.badRcodes()))
		if n := st.badRcodes(); n > 0 {
			problems = append(problems, fmt.Sprintf("api: %s: %d DNS answers were not NOERROR: %v", run.name, n, st.rcodes))
		}
	}
	return ratios, problems
}
