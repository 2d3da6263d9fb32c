package fault

import (
	"fmt"
	"net"
	"sync"
)

// Proxy forwards TCP connections from a loopback port to one target address,
// and can cut them: one client's path to etcd fails while the rest of the
// network stays intact, which stopping a member cannot show.
//
// A cut is a blackhole, the hard kind of partition: connections stay open and
// new ones are accepted, but every byte is dropped, so the client learns of
// the cut only by its own timeouts, as behind a dead router. Heal closes the
// connections that lived through the cut (their streams lost bytes, as a
// real peer's timeout would end them) and forwards again.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cut    bool
	closed bool
	conns  map[*proxied]struct{}
	wg     sync.WaitGroup
}

// proxied is one accepted connection and, unless it was accepted during a
// cut, its connection to the target.
type proxied struct {
	client, server net.Conn // server is nil for a blackholed connection
	poisoned       bool     // lived through a cut: closed by Heal
}

func (c *proxied) close() {
	c.client.Close()
	if c.server != nil {
		c.server.Close()
	}
}

// NewProxy listens on a free loopback port and forwards to target
// ("host:port"). Close stops it.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy to %s: listen: %w", target, err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[*proxied]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the address clients dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut starts the blackhole: from now on no byte passes in either direction,
// on open connections and on new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.poisoned = true
	}
}

// Heal ends the blackhole: the connections that lived through it are closed
// and new ones are forwarded.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for c := range p.conns {
		if c.poisoned {
			c.close()
			delete(p.conns, c)
		}
	}
}

// Close stops accepting, closes every connection and waits for the copying
// goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.close()
	}
	clear(p.conns)
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		c := &proxied{client: client}
		if !p.isCut() {
			// Dial outside the lock; a failure drops the client as a
			// refused connection would.
			server, err := net.Dial("tcp", p.target)
			if err != nil {
				client.Close()
				continue
			}
			c.server = server
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.close()
			return
		}
		if p.cut {
			c.poisoned = true
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		if c.server == nil {
			p.wg.Go(func() { p.pipe(c, client, nil) })
			continue
		}
		p.wg.Go(func() { p.pipe(c, client, c.server) })
		p.wg.Go(func() { p.pipe(c, c.server, client) })
	}
}

// pipe copies src to dst until either side closes, dropping what it reads
// while the proxy is cut (dst nil: drop everything).
func (p *Proxy) pipe(c *proxied, src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !p.isCut() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
			c.close()
			return
		}
	}
}
