package rollcall_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/plugin/rollcall"
	"github.com/rollcall/rollcall/test/testkit"
)

// slowLink is a TCP proxy standing for the network between CoreDNS and
// etcd. Paused, it stops reading what etcd sends, as a stopped CoreDNS
// process or a saturated link does: once gRPC's flow-control window is full
// etcd cannot push events to the watch as they happen, and later sends the
// watch its backlog from storage in parts of at most 1,000 revisions, each
// headed with etcd's revision at the time (the newest write, not the part's
// last event). Limited, it passes etcd's bytes at a set rate, so that the
// catch-up takes seconds and a query can land between its parts. What the
// client sends to etcd always passes at once.
type slowLink struct {
	URL    string
	ln     net.Listener
	target string

	mu     sync.Mutex
	paused bool
	rate   int           // bytes a second from etcd to the client; 0: no limit
	change chan struct{} // closed (and replaced) on every change of the above
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// startSlowLink listens on a free loopback port and forwards to the etcd at
// clientURL until the test ends.
func startSlowLink(t *testing.T, clientURL string) *slowLink {
	t.Helper()
	u, err := url.Parse(clientURL)
	if err != nil {
		t.Fatalf("etcd URL %q: %v", clientURL, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &slowLink{URL: "http://" + ln.Addr().String(), ln: ln, target: u.Host, change: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *slowLink) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		if !p.track(down, up) {
			return
		}
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(up, down)
			p.drop(down, up)
		}()
		go func() {
			defer p.wg.Done()
			p.copyDown(down, up)
			p.drop(down, up)
		}()
	}
}

// track registers a connection pair; false (and both closed) once the link
// is closing.
func (p *slowLink) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// drop closes a pair, so the copier in the other direction ends too.
func (p *slowLink) drop(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(p.conns, c)
	}
}

// copyDown copies etcd's bytes to the client, waiting while paused (without
// reading, so etcd's sends back up) and keeping to the rate.
func (p *slowLink) copyDown(down, up net.Conn) {
	buf := make([]byte, 2048)
	for {
		rate, ok := p.await()
		if !ok {
			return
		}
		n, err := up.Read(buf)
		if n > 0 {
			if _, werr := down.Write(buf[:n]); werr != nil {
				return
			}
			if rate > 0 {
				time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
			}
		}
		if err != nil {
			return
		}
	}
}

// await blocks while the link is paused and returns the rate to keep; false
// once it is closing.
func (p *slowLink) await() (int, bool) {
	for {
		p.mu.Lock()
		closed, paused, rate, change := p.closed, p.paused, p.rate, p.change
		p.mu.Unlock()
		switch {
		case closed:
			return 0, false
		case !paused:
			return rate, true
		}
		<-change
	}
}

func (p *slowLink) set(paused bool, rate int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused, p.rate = paused, rate
	close(p.change)
	p.change = make(chan struct{})
}

// pause stops passing etcd's bytes; resume passes them again at rate bytes
// a second (0: no limit).
func (p *slowLink) pause()          { p.set(true, 0) }
func (p *slowLink) resume(rate int) { p.set(false, rate) }

func (p *slowLink) close() {
	p.mu.Lock()
	p.closed = true
	close(p.change)
	p.change = make(chan struct{})
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// writeRevisions writes n keys under the prefix, one revision each, from
// several writers at once (so that they land faster than one client's round
// trips allow), and fails the test on an error.
func writeRevisions(t *testing.T, cli *clientv3.Client, n int) {
	t.Helper()
	const writers = 16
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			var err error
			for i := w; i < n && err == nil; i += writers {
				svc := fmt.Sprintf("bulk%04d", i)
				_, err = cli.Put(ctx, "/rollcall/hosts/bulk/services/"+svc, `{"service":"`+svc+`","host":"bulk"}`)
			}
			errs <- err
		}()
	}
	var all []error
	for range writers {
		all = append(all, <-errs)
	}
	if err := errors.Join(all...); err != nil {
		t.Fatalf("writing %d revisions: %v", n, err)
	}
}

// TestCatchUpClaimsOnlyWhatIsServed holds the plugin's watch behind by more
// than etcd sends a lagging watch at once (1,000 revisions), writes a
// canary, and then lets the watch catch up through a slow link. At every
// moment the SOA serial and coredns_rollcall_revision may only name a
// revision whose data is served: whenever either is at least the canary's
// revision, the canary answers. And while the watch is catching up it
// says so (watch_state "behind"), never "watching", until it has applied
// everything etcd reported.
func TestCatchUpClaimsOnlyWhatIsServed(t *testing.T) {
	// The freshness check runs often (its read waits behind the backlog on
	// the slow link, and must neither stall the watch nor call a watch
	// current that is not). A long stale limit: the catch-up is slow on
	// purpose and must not be cut short by a re-list, which would serve
	// the canary at once and prove nothing.
	rollcall.SetLoaderTiming(t, 300*time.Millisecond, time.Minute, 200*time.Millisecond)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	testkit.Put(t, cli, "/rollcall/hosts/h1/services/web", `{"service":"web","host":"h1","addrs":{"public":["192.0.2.1"]}}`)
	link := startSlowLink(t, e.ClientURL)
	port := testkit.FreePort(t)
	testkit.StartCoreDNS(t, fmt.Sprintf("infra.example.com:%d {\n rollcall {\n  endpoint %s\n }\n}\n", port, link.URL))
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	src := source([]string{link.URL})
	labels := map[string]string{"source": src}
	testkit.Eventually(t, 10*time.Second, "watch never started", func() bool {
		return metric(t, "coredns_rollcall_watch_state", map[string]string{"source": src, "state": "watching"}) == 1
	})
	lists := metric(t, "coredns_rollcall_lists_total", labels)

	const canary = "canary.infra.example.com."
	link.pause()
	paused := time.Now()
	const backlog = 3000
	writeRevisions(t, cli, backlog)
	canaryRev := testkit.Put(t, cli, "/rollcall/hosts/canary/services/canary",
		`{"service":"canary","host":"canary","addrs":{"public":["192.0.2.77"]}}`).Header.Revision
	t.Logf("%d revisions and the canary (revision %d) written in %v with the plugin's link paused",
		backlog, canaryRev, time.Since(paused).Round(time.Millisecond))
	// At about 100 bytes an event on the wire, 100 KiB/s makes the catch-up
	// last seconds, its parts of 1,000 revisions about a second apart.
	link.resume(100 << 10)
	resumed := time.Now()

	serial := func() int64 {
		m := testkit.Query(t, "udp", addr, "", "infra.example.com.", dns.TypeSOA)
		if len(m.Answer) != 1 {
			t.Fatalf("SOA query: %v", m)
		}
		return int64(m.Answer[0].(*dns.SOA).Serial)
	}
	answers := func() bool {
		m := testkit.Query(t, "udp", addr, "", canary, dns.TypeA)
		return m.Rcode == dns.RcodeSuccess && len(m.Answer) == 1
	}
	state := func() string {
		for _, s := range []string{"listing", "watching", "behind", "unreachable"} {
			if metric(t, "coredns_rollcall_watch_state", map[string]string{"source": src, "state": s}) == 1 {
				return s
			}
		}
		return ""
	}
	var samples int
	sawBehind, behindAt := false, time.Duration(0) // behindAt: since resuming
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Each claim is read before the canary is asked for: data claimed
		// then must be served by the time of the question.
		st, soa := state(), serial()
		rev := int64(metric(t, "coredns_rollcall_revision", labels))
		ok := answers()
		samples++
		if soa >= canaryRev && !ok {
			t.Errorf("%v after resuming: SOA serial %d claims the canary's revision %d, but the canary is NXDOMAIN", time.Since(resumed).Round(time.Millisecond), soa, canaryRev)
		}
		if rev >= canaryRev && !ok {
			t.Errorf("%v after resuming: coredns_rollcall_revision %d claims the canary's revision %d, but the canary is NXDOMAIN", time.Since(resumed).Round(time.Millisecond), rev, canaryRev)
		}
		if t.Failed() {
			t.FailNow()
		}
		if st == "behind" && !sawBehind {
			sawBehind, behindAt = true, time.Since(resumed)
		}
		// Once the watch has said it is behind, etcd has reported the
		// canary's revision (every part of the backlog is headed with it):
		// "watching" before the canary is served would call a state
		// current that is not.
		if sawBehind && st == "watching" && !ok {
			t.Fatalf("%v after resuming: watch_state says watching (current) while the watch has not applied the canary", time.Since(resumed).Round(time.Millisecond))
		}
		if ok && soa >= canaryRev && rev >= canaryRev {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not caught up 60s after resuming: serial %d, revision metric %d, canary answers %v, state %q", soa, rev, ok, st)
		}
	}
	t.Logf("caught up %v after resuming (%d samples); reported behind: %v, first %v after resuming",
		time.Since(resumed).Round(time.Millisecond), samples, sawBehind, behindAt.Round(time.Millisecond))
	if got := metric(t, "coredns_rollcall_lists_total", labels); got != lists {
		t.Fatalf("the plugin listed etcd again (%v lists, %v before): the watch did not catch up, the test proved nothing", got, lists)
	}
	if !sawBehind {
		t.Errorf("the watch caught up from %d revisions behind without ever reporting watch_state behind", backlog)
	}
	testkit.Eventually(t, 10*time.Second, "caught-up watch never reported watching again", func() bool {
		return state() == "watching"
	})
}

// TestProgressAdvancesRevision: writes outside the prefix move etcd's
// revision but send the watch no event. A progress notification promises
// that nothing up to its revision is missing, so the served revision
// follows etcd's through it, and only through it.
func TestProgressAdvancesRevision(t *testing.T) {
	rollcall.SetLoaderTiming(t, 100*time.Millisecond, 500*time.Millisecond, 200*time.Millisecond)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	testkit.Put(t, cli, "/rollcall/hosts/h1/services/web", `{"service":"web","host":"h1"}`)
	port := testkit.FreePort(t)
	testkit.StartCoreDNS(t, fmt.Sprintf("infra.example.com:%d {\n rollcall {\n  endpoint %s\n }\n}\n", port, e.ClientURL))
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	labels := map[string]string{"source": source(e.Endpoints())}
	var last int64
	for i := range 5 {
		last = testkit.Put(t, cli, "/other/key", fmt.Sprint(i)).Header.Revision
	}
	testkit.Eventually(t, 10*time.Second, "served revision never reached etcd's after writes outside the prefix", func() bool {
		return int64(metric(t, "coredns_rollcall_revision", labels)) == last
	})
	m := testkit.Query(t, "udp", addr, "", "infra.example.com.", dns.TypeSOA)
	if got := m.Answer[0].(*dns.SOA).Serial; got != uint32(last) {
		t.Errorf("SOA serial %d, want etcd's revision %d", got, last)
	}
}
