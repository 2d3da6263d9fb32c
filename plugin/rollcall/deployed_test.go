package rollcall_test

import (
	"fmt"
	golog "log"
	"net"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rollcall/rollcall/plugin/rollcall"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestDeployedMetricsAndLog serves the fixture from a real CoreDNS whose
// blocks carry what a production block does (errors, prometheus, log) in
// front of rollcall, and asks the same questions twice: once with the
// packed path through the recorders of prometheus and log, once with every
// wrapped writer handed a dns.Msg. What prometheus exports for the server
// (responses by rcode and plugin, response and request sizes, requests by
// type, DO) and every log line must be the same both ways: NOERROR answers,
// NXDOMAIN, NODATA, truncated UDP, TCP, EDNS0 with DO, client subnet, and
// REFUSED. One block logs only denials, which takes the log plugin's
// classification of the reply.
func TestDeployedMetricsAndLog(t *testing.T) {
	e := testkit.StartEtcd(t)
	putFixture(t, e.Client(t))
	logs := captureLog(t)

	packed := askDeployed(t, e, logs, false)
	msgPath := askDeployed(t, e, logs, true)

	if len(packed.metrics) == 0 || len(packed.logs) == 0 {
		t.Fatalf("nothing recorded: %d metrics, %d log lines", len(packed.metrics), len(packed.logs))
	}
	compareLines(t, "metrics", packed.metrics, msgPath.metrics)
	compareLines(t, "log lines", packed.logs, msgPath.logs)
	compareLines(t, "answers", packed.answers, msgPath.answers)
	// The cases the issue names must have been asked.
	for _, want := range []string{"NXDOMAIN", "tc,", "udp", "tcp", "true 1232"} {
		if !strings.Contains(strings.Join(packed.logs, "\n"), want) {
			t.Errorf("no log line with %q", want)
		}
	}
}

// deployedRun is what one pass of askDeployed saw: prometheus's series of
// the server (its address label dropped), the log lines (client port and
// duration dropped), and the answers in short.
type deployedRun struct {
	metrics, logs, answers []string
}

// askDeployed starts CoreDNS with every fixture block behind errors,
// prometheus and log, asks every case, and returns what was recorded.
// msgPath hands the wrapped writers a dns.Msg, as before the packed path
// knew the recorders.
func askDeployed(t *testing.T, e *testkit.Etcd, logs *testkit.Buffer, msgPath bool) deployedRun {
	t.Helper()
	rollcall.SetMsgPathWhenWrapped(t, msgPath)
	port, mport := testkit.FreePort(t), testkit.FreePort(t)
	var cf strings.Builder
	for _, blk := range rollcall.Blocks {
		logLine := "  log\n"
		if blk.Zone == "plain.example.com." {
			logLine = "  log . {\n    class denial\n  }\n"
		}
		fmt.Fprintf(&cf, "%s:%d {\n  errors\n  prometheus 127.0.0.1:%d\n%s  rollcall {\n    endpoint %s\n%s\n  }\n}\n",
			blk.Zone, port, mport, logLine, e.ClientURL, blk.Body)
	}
	testkit.StartCoreDNS(t, cf.String())
	logStart := len(logs.String())

	addr := func(from string) string {
		if strings.Contains(from, ":") {
			return net.JoinHostPort("::1", fmt.Sprint(port))
		}
		return net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	}
	var run deployedRun
	id := uint16(0)
	ask := func(netw, from, name string, qtype uint16, opts ...func(*dns.Msg)) {
		id++
		opts = append(opts[:len(opts):len(opts)], func(m *dns.Msg) { m.Id = id })
		m := testkit.Query(t, netw, addr(from), from, name, qtype, opts...)
		run.answers = append(run.answers, fmt.Sprintf("%d %s %s %s: %s tc=%v %d/%d/%d", m.Id, netw, name, dns.TypeToString[qtype],
			dns.RcodeToString[m.Rcode], m.Truncated, len(m.Answer), len(m.Ns), len(m.Extra)))
	}
	edns := func(size uint16, do bool) func(*dns.Msg) {
		return func(m *dns.Msg) {
			if o := m.IsEdns0(); o != nil {
				o.SetUDPSize(size)
				o.SetDo(do)
				return
			}
			m.SetEdns0(size, do)
		}
	}
	for _, k := range rollcall.Cases {
		var opts []func(*dns.Msg)
		if k.ECS != "" {
			opts = append(opts, testkit.WithECS(k.ECSPrefix()))
		}
		for _, netw := range []string{"udp", "tcp"} {
			ask(netw, k.From, k.FQDN(), k.QType, opts...)
			ask(netw, k.From, k.FQDN(), k.QType, append(opts, edns(1232, true))...)
		}
		ask("udp", k.From, k.FQDN(), k.QType, append(opts, edns(4096, false))...)
	}
	// Truncated over UDP (60 addresses do not fit 512 bytes), whole over
	// TCP or a large buffer; for a client on an overlay too.
	for _, from := range []string{"127.0.0.1", "127.0.1.5"} {
		ask("udp", from, "many.infra.example.com.", dns.TypeA)
		ask("udp", from, "many.infra.example.com.", dns.TypeA, edns(1232, false))
		ask("tcp", from, "many.infra.example.com.", dns.TypeA)
		ask("udp", from, "many.plain.example.com.", dns.TypeA)
	}
	// The block that logs denials only: NODATA and NXDOMAIN are logged,
	// answers are not.
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"web", dns.TypeTXT}, {"nosuch", dns.TypeA}, {"web", dns.TypeA}, {"_tcp.web", dns.TypeSRV}} {
		ask("udp", "127.0.0.1", q.name+".plain.example.com.", q.qtype)
		ask("tcp", "127.0.0.1", q.name+".plain.example.com.", q.qtype, edns(1232, true))
	}
	// REFUSED: a zone transfer (rollcall declines, CoreDNS answers).
	ask("udp", "127.0.0.1", "infra.example.com.", dns.TypeAXFR)
	// The packed reply went out as packed: its owner names are pointers
	// to the question, where CoreDNS sends a dns.Msg that fits
	// uncompressed as it is.
	id++
	if got := compressedOnWire(t, addr("127.0.0.1"), id); got == msgPath {
		t.Errorf("answer compressed on the wire: %v, want %v (the packed path taken: %v)", got, !msgPath, !msgPath)
	}

	// prometheus counts a query once the plugins after it (log, which
	// writes its line, and rollcall) are done, which may be after the
	// client has its answer.
	server := fmt.Sprintf("dns://:%d", port)
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("prometheus never counted %d requests", id), func() bool {
		return metricSum(t, "coredns_dns_requests_total", server) >= float64(id)
	})
	run.metrics = serverSeries(t, server)
	run.logs = queryLogLines(logs.String()[logStart:])
	return run
}

// compressedOnWire asks addr for web.infra.example.com. A over UDP and
// reports whether the first answer's owner is a compression pointer.
func compressedOnWire(t *testing.T, addr string, id uint16) bool {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("web.infra.example.com.", dns.TypeA)
	m.Id = id
	q, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(q); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 512)
	n, err := conn.Read(b)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	// The answer section starts after the header and the question as asked.
	at := len(q)
	return n > at+1 && b[at]&0xc0 == 0xc0
}

// captureLog sends the process's log (CoreDNS's log plugin writes through
// it) to a buffer, without timestamps, until the test ends.
func captureLog(t *testing.T) *testkit.Buffer {
	buf := new(testkit.Buffer)
	out, flags := golog.Writer(), golog.Flags()
	golog.SetOutput(buf)
	golog.SetFlags(0)
	t.Cleanup(func() {
		golog.SetOutput(out)
		golog.SetFlags(flags)
	})
	return buf
}

// queryLine is the log plugin's default line: {remote}:{port} - {>id}
// "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode}
// {>rflags} {rsize} {duration}.
var queryLine = regexp.MustCompile(`^\[INFO\] (\S+):\d+ - (\d+ ".*" \S+ \S* \d+) [0-9.e-]+s$`)

// queryLogLines picks the log plugin's lines out of the log, without the
// client's port and the duration, which differ from run to run.
func queryLogLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if m := queryLine.FindStringSubmatch(l); m != nil {
			out = append(out, m[1]+" "+m[2])
		}
	}
	return out
}

// serverSeries lists every series prometheus exports with the server label
// (responses by rcode and plugin, sizes, requests), that label dropped:
// "name{labels} value", a histogram as its count, sum and buckets. The
// request duration is left out but for its count.
func serverSeries(t *testing.T, server string) []string {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			mine := false
			for _, l := range m.GetLabel() {
				if l.GetName() == "server" {
					mine = l.GetValue() == server
					continue
				}
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			if !mine {
				continue
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				out = append(out, fmt.Sprintf("%s %v", key, m.GetCounter().GetValue()))
			case m.GetGauge() != nil:
				out = append(out, fmt.Sprintf("%s %v", key, m.GetGauge().GetValue()))
			case m.GetHistogram() != nil:
				h := m.GetHistogram()
				out = append(out, fmt.Sprintf("%s count %d", key, h.GetSampleCount()))
				if strings.HasSuffix(mf.GetName(), "_duration_seconds") {
					continue
				}
				out = append(out, fmt.Sprintf("%s sum %v", key, h.GetSampleSum()))
				for _, b := range h.GetBucket() {
					out = append(out, fmt.Sprintf("%s le=%v %d", key, b.GetUpperBound(), b.GetCumulativeCount()))
				}
			}
		}
	}
	return out
}

// metricSum adds up a counter's series for the server.
func metricSum(t *testing.T, name, server string) float64 {
	t.Helper()
	var sum float64
	for _, s := range serverSeries(t, server) {
		if rest, ok := strings.CutPrefix(s, name+"{"); ok {
			var v float64
			fmt.Sscan(rest[strings.LastIndexByte(rest, ' ')+1:], &v)
			sum += v
		}
	}
	return sum
}

// compareLines reports the lines only one side has.
func compareLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, l := range got {
		count[l]++
	}
	for _, l := range want {
		count[l]--
	}
	var diff []string
	for l, n := range count {
		switch {
		case n > 0:
			diff = append(diff, fmt.Sprintf("packed only (%d): %s", n, l))
		case n < 0:
			diff = append(diff, fmt.Sprintf("dns.Msg path only (%d): %s", -n, l))
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Errorf("%s differ (%d packed, %d through a dns.Msg):\n%s", what, len(got), len(want), strings.Join(diff, "\n"))
	}
}
