package devmode

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/miekg/dns"

	"github.com/rollcall/rollcall/registry"
)

// Defaults of `rollcall dev`.
const (
	DefaultDataDir   = ".rollcall-dev"
	DefaultClientURL = "http://127.0.0.1:2379"
	DefaultPeerURL   = "http://127.0.0.1:2380"
	DefaultDNSAddr   = "127.0.0.1:1053"
	DefaultZone      = "infra.example.com."
	DefaultTTL       = 10 * time.Second
	// DemoService is the service the dev agent registers as always present.
	DemoService = "demo"

	// DefaultHTTPAddr is where the plugin serves its HTTP API and status
	// page (the `http` option); HTTPOff turns them off.
	DefaultHTTPAddr = "127.0.0.1:8053"
	HTTPOff         = "off"
)

// Config is what `rollcall dev` runs. The zero value of a field means its
// default.
type Config struct {
	DataDir string // etcd's data and its log
	// ClientURL and PeerURL are etcd's: http://IP:PORT.
	ClientURL, PeerURL string
	DNSAddr            string // IP:PORT of the DNS server, UDP and TCP
	Zone               string
	Prefix             string
	// Host names this host in the registry; default the short host name (or
	// the services config's host).
	Host string
	TTL  time.Duration // the agent's lease TTL
	// ServicesConfig is an agent config file (servicereg.yml format) whose
	// services are registered while their systemd units are active.
	ServicesConfig string
	// LogQueries adds CoreDNS's log plugin: one line per query.
	LogQueries bool
	// HTTPAddr is IP:PORT of the plugin's HTTP API and status page, or
	// HTTPOff.
	HTTPAddr string

	// Self is how the user runs rollcall, for the commands printed at start.
	Self string
	// Out receives the start-up banner; Logger everything else.
	Out    io.Writer
	Logger *slog.Logger

	// Flag names, for error messages that say which flag to change; the
	// command line sets them.
	ClientFlag, PeerFlag, DNSFlag, HTTPFlag, DataDirFlag string
}

// withDefaults fills in defaults and checks every value.
func (c Config) withDefaults() (Config, error) {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&c.DataDir, DefaultDataDir)
	def(&c.ClientURL, DefaultClientURL)
	def(&c.PeerURL, DefaultPeerURL)
	def(&c.DNSAddr, DefaultDNSAddr)
	def(&c.HTTPAddr, DefaultHTTPAddr)
	def(&c.Zone, DefaultZone)
	def(&c.Prefix, registry.DefaultPrefix)
	def(&c.Self, "rollcall")
	def(&c.ClientFlag, "-etcd-port")
	def(&c.PeerFlag, "-etcd-peer-port")
	def(&c.DNSFlag, "-dns-addr")
	def(&c.HTTPFlag, "-http-addr")
	def(&c.DataDirFlag, "-data-dir")
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	var errs []error
	if _, err := hostPort(c.ClientURL); err != nil {
		errs = append(errs, fmt.Errorf("etcd client URL: %w", err))
	}
	if _, err := hostPort(c.PeerURL); err != nil {
		errs = append(errs, fmt.Errorf("etcd peer URL: %w", err))
	}
	if ap, err := netip.ParseAddrPort(c.DNSAddr); err != nil || ap.Port() == 0 {
		errs = append(errs, fmt.Errorf("DNS address %q must be IP:PORT with a port other than 0, e.g. %s", c.DNSAddr, DefaultDNSAddr))
	}
	if c.HTTPAddr != HTTPOff {
		if ap, err := netip.ParseAddrPort(c.HTTPAddr); err != nil || ap.Port() == 0 {
			errs = append(errs, fmt.Errorf("HTTP address %q must be IP:PORT with a port other than 0, e.g. %s, or %s", c.HTTPAddr, DefaultHTTPAddr, HTTPOff))
		} else if c.HTTPAddr == c.DNSAddr {
			errs = append(errs, fmt.Errorf("DNS and HTTP are both on %s (DNS listens on TCP too): give them different ports", c.HTTPAddr))
		}
	}
	if _, ok := dns.IsDomainName(c.Zone); !ok || c.Zone == "." {
		errs = append(errs, fmt.Errorf("zone %q is not a domain name, e.g. %s", c.Zone, DefaultZone))
	}
	c.Zone = dns.Fqdn(c.Zone)
	if _, err := registry.NewKeys(c.Prefix); err != nil {
		errs = append(errs, err)
	}
	if c.Host != "" {
		if err := registry.CheckName("host", c.Host); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TTL < 2*time.Second {
		errs = append(errs, fmt.Errorf("TTL %v is too short: at least 2s", c.TTL))
	}
	if c.ClientURL == c.PeerURL {
		errs = append(errs, fmt.Errorf("etcd client and peer URLs are both %s: give them different ports", c.ClientURL))
	}
	return c, errors.Join(errs...)
}

// hostPort checks an etcd URL for dev mode (http, an IP literal, a port) and
// returns its IP:PORT.
func hostPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Path != "" && u.Path != "/" {
		return "", fmt.Errorf("%q must be http://IP:PORT (dev mode uses no TLS)", raw)
	}
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil || ap.Port() == 0 {
		return "", fmt.Errorf("%q must be http://IP:PORT with an IP address and a port other than 0", raw)
	}
	return u.Host, nil
}

// splitDNSAddr splits a checked IP:PORT.
func splitDNSAddr(addr string) (ip string, port int) {
	h, p, _ := net.SplitHostPort(addr)
	port, _ = strconv.Atoi(p)
	return h, port
}
