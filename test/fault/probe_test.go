package fault

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// prober queries the server continuously over UDP and TCP and records every
// query that got no answer (timeout, error) or SERVFAIL, and every SOA
// serial that went backwards.
type prober struct {
	names  []string
	always map[string]bool // names that must answer with records every time
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	total    int
	failures []string
	relaxed  bool        // always-names missing are gaps, not failures
	gaps     []time.Time // when an always-name was missing while relaxed
}

// relax stops failing on always-names that answer without records and
// records those moments as gaps instead: for a phase where the design allows
// registrations to lapse (leases expiring after an outage), measured, not
// asserted.
func (p *prober) relax() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.relaxed = true
}

// gap returns the first and last moment an always-name was missing while
// relaxed, and how often.
func (p *prober) gap() (first, last time.Time, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.gaps) == 0 {
		return time.Time{}, time.Time{}, 0
	}
	return p.gaps[0], p.gaps[len(p.gaps)-1], len(p.gaps)
}

// startProber starts probing c for names (plus the zone's SOA) until stop.
// The names in always must answer with records every time: their units run
// throughout, so their registration must never be lost.
func startProber(c *coreDNS, names []string, always ...string) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{names: append(names, always...), always: map[string]bool{}, cancel: cancel}
	for _, n := range always {
		p.always[n] = true
	}
	for _, netw := range []string{"udp", "tcp"} {
		p.wg.Go(func() { p.run(ctx, c, netw) })
	}
	return p
}

func (p *prober) fail(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.failures) < 50 {
		p.failures = append(p.failures, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	}
}

func (p *prober) run(ctx context.Context, c *coreDNS, netw string) {
	ask := newAsker(c.dns, netw)
	defer ask.close()
	var last uint32
	for ctx.Err() == nil {
		for _, name := range p.names {
			m, err := ask.exchange(name, dns.TypeA)
			p.mu.Lock()
			p.total++
			p.mu.Unlock()
			switch {
			case err != nil:
				p.fail("%s %s: no answer: %v", netw, name, err)
			case m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError:
				p.fail("%s %s: %s", netw, name, dns.RcodeToString[m.Rcode])
			case p.always[name] && (m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0):
				p.mu.Lock()
				relaxed := p.relaxed
				if relaxed {
					p.gaps = append(p.gaps, time.Now())
				}
				p.mu.Unlock()
				if !relaxed {
					p.fail("%s %s: %s with %d records, but its units run all along", netw, name, dns.RcodeToString[m.Rcode], len(m.Answer))
				}
			}
		}
		m, err := ask.exchange(zone, dns.TypeSOA)
		switch {
		case err != nil:
			p.fail("%s SOA: %v", netw, err)
		case m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0:
			p.fail("%s SOA: %s with %d records", netw, dns.RcodeToString[m.Rcode], len(m.Answer))
		case m.Answer[0].(*dns.SOA).Serial < last:
			p.fail("%s SOA serial went back from %d to %d", netw, last, m.Answer[0].(*dns.SOA).Serial)
		default:
			last = m.Answer[0].(*dns.SOA).Serial
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// asker sends queries over one socket, UDP or TCP, for reuse queries, then
// opens a new one: new sockets get tested too, without a socket (and an
// ephemeral port) per query. Thousands of queries a second, each on a port
// of its own, would take the ports that servers of tests running beside
// this one (and stopped etcd members coming back) have just been handed as
// free, and make them fail to bind.
type asker struct {
	addr, netw string
	conn       *dns.Conn
	used       int
	last       time.Time // when conn last answered
}

const reuse = 100

// idleRetry: a TCP connection idle this long may have been closed by the
// server, as servers may (RFC 7766); a query that fails on it is sent again
// on a new one. The prober's connections are never idle that long, so this
// never hides a failure of a connection in use.
const idleRetry = time.Second

func newAsker(addr, netw string) *asker { return &asker{addr: addr, netw: netw} }

func (a *asker) exchange(name string, qtype uint16) (*dns.Msg, error) {
	stale := a.conn != nil && a.netw == "tcp" && time.Since(a.last) > idleRetry
	r, err := a.once(name, qtype)
	if err != nil && stale {
		r, err = a.once(name, qtype)
	}
	return r, err
}

func (a *asker) once(name string, qtype uint16) (*dns.Msg, error) {
	if a.conn != nil && a.used >= reuse {
		a.close()
	}
	cl := &dns.Client{Net: a.netw, Timeout: 5 * time.Second}
	if a.conn == nil {
		conn, err := cl.Dial(a.addr)
		if err != nil {
			return nil, fmt.Errorf("dial: %w", err)
		}
		a.conn, a.used = conn, 0
	}
	a.used++
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := cl.ExchangeWithConn(m, a.conn)
	if err != nil {
		a.close()
		return nil, err
	}
	a.last = time.Now()
	return r, nil
}

func (a *asker) close() {
	if a.conn != nil {
		a.conn.Close()
		a.conn = nil
	}
}

// stop ends the probing and returns how many queries were sent and what
// failed.
func (p *prober) stop() (int, []string) {
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total, p.failures
}
