package rollcall

// The `http` option: a read-only HTTP API, Prometheus service discovery and
// a status page, served by the plugin from the index its DNS answers come
// from (README.md, "HTTP"). This file is the option and the server's
// life: parsing `http ADDR [CERT KEY [CA]]`, listening, and stopping on
// shutdown and reload. The handlers are in httpapi.go, httpexplain.go and
// httppage.go; what they wait on and the recent changes, in httpfeed.go.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coredns/caddy"
)

// httpConfig is an `http ADDR [CERT KEY [CA]]` line.
type httpConfig struct {
	addr  string
	where string      // file:line of the option, for errors about the address
	tls   *tls.Config // nil: plain HTTP
}

// HTTP server timing: variables, not constants, so tests can shorten them.
var (
	// httpShutdownGrace bounds how long a stopping server waits for
	// requests in flight (blocking queries are released at once).
	httpShutdownGrace = 5 * time.Second
)

// HTTP server limits.
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpIdleTimeout       = 2 * time.Minute
	httpMaxHeaderBytes    = 16 << 10
)

// parseHTTP reads the arguments of an `http` line: an address, then
// optionally a certificate and key, then optionally a CA whose
// certificates every client must present. The files are read now, so a
// mistake stops the server with the Corefile line that holds it.
func parseHTTP(c *caddy.Controller, args []string) (*httpConfig, error) {
	if len(args) != 1 && len(args) != 3 && len(args) != 4 {
		return nil, c.Errf("http needs an address, then optionally CERT KEY [CA] for HTTPS, e.g. http 127.0.0.1:8053 or http :8443 cert.pem key.pem ca.pem; got %d arguments", len(args))
	}
	h := &httpConfig{addr: args[0], where: fmt.Sprintf("%s:%d", c.File(), c.Line())}
	host, port, err := net.SplitHostPort(h.addr)
	if err != nil {
		return nil, c.Errf("http %q is not HOST:PORT, e.g. 127.0.0.1:8053, [::1]:8053 or :8053 (every address)", h.addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, c.Errf("http %q: port %q is not a number from 0 to 65535", h.addr, port)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return nil, c.Errf("http %q: %q is not an IP address: listen on an address (127.0.0.1, ::1, 10.0.0.1), localhost, or none for every address", h.addr, host)
		}
	}
	if len(args) == 1 {
		return h, nil
	}
	cert, err := tls.LoadX509KeyPair(args[1], args[2])
	if err != nil {
		return nil, c.Errf("http %s: certificate %s and key %s: %v", h.addr, args[1], args[2], err)
	}
	h.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if len(args) == 4 {
		pem, err := os.ReadFile(args[3])
		if err != nil {
			return nil, c.Errf("http %s: client CA: %v", h.addr, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, c.Errf("http %s: client CA %s holds no PEM certificate", h.addr, args[3])
		}
		h.tls.ClientCAs = pool
		h.tls.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return h, nil
}

// scheme is how clients reach the server: http or https.
func (h *httpConfig) scheme() string {
	if h.tls != nil {
		return "https"
	}
	return "http"
}

// setupHTTP ties a block's HTTP server to the Corefile's life. A server
// block with several keys (`a.example b.example { ... }`) runs its setup
// once per key, each with its own handler over the same registry; the
// first serves HTTP for the block.
//
// On a reload caddy starts the new Corefile's servers before it shuts the
// old ones down, so the old server gives up its address when the reload
// begins (OnRestart) and takes it back if the reload fails.
func setupHTTP(c *caddy.Controller, rc *Rollcall) error {
	return c.OncePerServerBlock(func() error {
		s := &httpServer{cfg: rc.cfg.http, rc: rc}
		c.OnStartup(s.start)
		c.OnRestart(s.stop)
		c.OnRestartFailed(s.start)
		c.OnShutdown(s.stop)
		return nil
	})
}

// httpServer is one block's HTTP server. Between start and stop it holds
// the address, a listener and a feed subscribed to the block's loader.
type httpServer struct {
	cfg *httpConfig
	rc  *Rollcall

	mu   sync.Mutex // serialises start and stop; guards what follows
	srv  *http.Server
	feed *httpFeed
	ld   *loader
	done chan struct{} // closed when Serve has returned
}

// httpAddrs is which block serves each HTTP address in this process, so
// that two blocks given the same address get an error that names both
// rather than "address already in use".
var httpAddrs = struct {
	sync.Mutex
	m map[string]*httpServer
}{m: map[string]*httpServer{}}

func (s *httpServer) claimAddr() error {
	httpAddrs.Lock()
	defer httpAddrs.Unlock()
	if other := httpAddrs.m[s.cfg.addr]; other != nil && other != s {
		return fmt.Errorf("http %s (%s) of the block of %s: the address is already served by the block of %s (%s): give each server block its own http address, since each has its own views and zones",
			s.cfg.addr, s.cfg.where, strings.Join(s.rc.cfg.zones, " "), strings.Join(other.rc.cfg.zones, " "), other.cfg.where)
	}
	httpAddrs.m[s.cfg.addr] = s
	return nil
}

func (s *httpServer) releaseAddr() {
	httpAddrs.Lock()
	defer httpAddrs.Unlock()
	if httpAddrs.m[s.cfg.addr] == s {
		delete(httpAddrs.m, s.cfg.addr)
	}
}

// start listens and serves; it does nothing when already serving. It runs
// after the block's own OnStartup, which acquired the loader.
func (s *httpServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	if s.rc.ld == nil {
		return fmt.Errorf("rollcall: http %s (%s): the block has no etcd loader: its start-up failed", s.cfg.addr, s.cfg.where)
	}
	if err := s.claimAddr(); err != nil {
		return fmt.Errorf("rollcall: %w", err)
	}
	ln, err := net.Listen("tcp", s.cfg.addr)
	if err != nil {
		s.releaseAddr()
		return fmt.Errorf("rollcall: http %s (%s): %w", s.cfg.addr, s.cfg.where, err)
	}
	if s.cfg.tls != nil {
		ln = tls.NewListener(ln, s.cfg.tls)
	}
	s.ld = s.rc.ld
	s.feed = newHTTPFeed(s.rc.ix)
	s.ld.subscribe(s.feed)
	api := newHTTPAPI(s.rc, s.feed, s.ld)
	s.srv = &http.Server{
		Handler:           api,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          stdlog.New(httpErrorLog{addr: s.cfg.addr}, "", 0),
	}
	s.done = make(chan struct{})
	go s.serve(s.srv, ln, s.done)
	log.Infof("HTTP API and status page for %s at %s://%s/", strings.Join(s.rc.cfg.zones, " "), s.cfg.scheme(), ln.Addr())
	return nil
}

func (s *httpServer) serve(srv *http.Server, ln net.Listener, done chan struct{}) {
	defer close(done)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Errorf("http %s stopped serving: %v", s.cfg.addr, err)
	}
}

// stop releases every blocking query, lets the requests in flight finish
// (up to httpShutdownGrace), closes the listener and gives the address up.
// It does nothing when not serving.
func (s *httpServer) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	// Blocking queries wait on the feed, not on the request: Shutdown
	// would wait for them for minutes. Closed, they answer at once.
	s.feed.close()
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownGrace)
	err := s.srv.Shutdown(ctx)
	cancel()
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	<-s.done
	s.ld.unsubscribe(s.feed)
	s.releaseAddr()
	s.srv, s.feed, s.ld, s.done = nil, nil, nil, nil
	if err != nil {
		return fmt.Errorf("rollcall: stop http %s: %w", s.cfg.addr, err)
	}
	return nil
}

// httpErrorLog sends net/http's own messages (a TLS handshake a client
// failed, a malformed request) to the plugin's log, saying which server.
type httpErrorLog struct{ addr string }

func (l httpErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimPrefix(strings.TrimSpace(string(p)), "http: ")
	log.Infof("http %s: %s", l.addr, msg)
	return len(p), nil
}
