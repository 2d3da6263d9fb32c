package rollcall

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/fall"
	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/rollcall/rollcall/internal/etcdconn"
	"github.com/rollcall/rollcall/registry"
)

var log = clog.NewWithPlugin(pluginName)

func init() { plugin.Register(pluginName, setup) }

// defaultTTL is the answer TTL (and negative TTL) without a `ttl` option.
const defaultTTL = 5

// startupWait bounds how long OnStartup waits for the first list of etcd
// before the server starts answering (SERVFAIL until loaded, ready false).
var startupWait = 5 * time.Second

// config is one `rollcall` block of a Corefile.
type config struct {
	zones                   []string
	endpoints               []string
	tlsCert, tlsKey, tlsCA  string
	prefix                  string
	ttl                     uint32
	nets                    []network
	local                   string
	ecs                     bool
	maxAnswers              int  // 0: no limit
	failClosed              bool // `fail_open off`
	fall                    fall.F
	hostview                bool          // `hostview`: a host's own addresses get its view
	hostviewLine            string        // file:line of `hostview`, for errors
	relistJitter            time.Duration // `relist_jitter`; relistJitterUnset when not given
	viewDependent           bool          // network, local, ecs or hostview given: answers depend on the client
	http                    *httpConfig   // `http`: the API and status page (http.go); nil when off
	viewLine, viewDirective string
}

func (c *config) loaderKey() loaderKey {
	return loaderKey{
		endpoints: strings.Join(c.endpoints, ","),
		prefix:    strings.TrimRight(c.prefix, "/"),
		cert:      c.tlsCert, key: c.tlsKey, ca: c.tlsCA,
		relistJitter: c.relistDelay(),
	}
}

// relistJitterUnset marks a block without `relist_jitter`: its loader takes
// the package default (relistJitter).
const relistJitterUnset time.Duration = -1

// maxRelistJitter bounds `relist_jitter`: a re-list happens after a
// compaction the watch fell behind, and DNS serves the old state until it
// is in, so a longer spread buys little and costs freshness.
const maxRelistJitter = 10 * time.Minute

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	rc := newRollcall(cfg)
	conf := dnsserver.GetConfig(c)

	c.OnStartup(func() error {
		// The stock cache keys answers on name and type only; with views one
		// client's answer would be served to clients of other views.
		if cfg.viewDependent && conf.Handler("cache") != nil {
			return plugin.Error(pluginName, fmt.Errorf("server block %v: %s (%s) makes answers depend on the client, but the block also has cache, which keys answers on name and type only and would hand one view's addresses to clients of other views: remove cache from this block (rollcall answers from memory and needs none)", cfg.zones, cfg.viewDirective, cfg.viewLine))
		}
		ld, err := acquire(cfg)
		if err != nil {
			return plugin.Error(pluginName, err)
		}
		rc.ld = ld
		rc.logs = logPluginsOf(conf.Handlers())
		ld.subscribe(rc.ix)
		if rc.hv != nil {
			rc.hv.source = ld.source
			ld.subscribe(rc.hv)
		}
		ctx, cancel := context.WithTimeout(context.Background(), startupWait)
		defer cancel()
		if err := ld.waitLoaded(ctx); err != nil {
			// A TLS mistake only ever shows as a timeout: say what it is.
			dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Second)
			if diag := etcdconn.Diagnose(dctx, etcdconn.Config{Endpoints: cfg.endpoints, Cert: cfg.tlsCert, Key: cfg.tlsKey, CA: cfg.tlsCA}); diag != nil {
				err = diag
			}
			dcancel()
			log.Warningf("etcd %s not loaded after %v, starting anyway (answers SERVFAIL and is not ready until the first list): %v", ld.source, startupWait, err)
		}
		return nil
	})
	c.OnShutdown(func() error {
		if rc.ld != nil {
			rc.ld.unsubscribe(rc.ix)
			if rc.hv != nil {
				rc.ld.unsubscribe(rc.hv)
			}
			rc.ld.release()
			rc.ld = nil
			rc.ix.close()
		}
		return nil
	})

	if cfg.http != nil {
		// After the block's OnStartup above: it serves from the loader
		// that one acquires.
		if err := setupHTTP(c, rc); err != nil {
			return plugin.Error(pluginName, err)
		}
	}

	conf.AddPlugin(func(next plugin.Handler) plugin.Handler {
		rc.Next = next
		return rc
	})
	return nil
}

// parse reads one rollcall block. Errors name the Corefile line at fault.
func parse(c *caddy.Controller) (*config, error) {
	cfg := &config{
		endpoints:    []string{etcdconn.DefaultEndpoint},
		prefix:       registry.DefaultPrefix,
		ttl:          defaultTTL,
		relistJitter: relistJitterUnset,
	}
	seen := false
	for c.Next() {
		if seen {
			return nil, c.Err("rollcall may appear once per server block")
		}
		seen = true
		cfg.zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
		for c.NextBlock() {
			if err := parseOption(c, cfg); err != nil {
				return nil, err
			}
		}
	}
	if cfg.hostview && len(cfg.nets) == 0 {
		return nil, fmt.Errorf("%s - Error during parsing: hostview gives a host's queries the networks its record lists, but this block declares no network, so every client gets public addresses anyway: add network lines or remove hostview", cfg.hostviewLine)
	}
	return cfg, nil
}

func parseOption(c *caddy.Controller, cfg *config) error {
	opt := c.Val()
	args := c.RemainingArgs()
	switch opt {
	case "endpoint":
		if len(args) == 0 {
			return c.Errf("endpoint needs at least one etcd client URL, e.g. endpoint %s", etcdconn.DefaultEndpoint)
		}
		for _, a := range args {
			u, err := url.Parse(a)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return c.Errf("endpoint %q is not an etcd client URL: write http://HOST:PORT or https://HOST:PORT", a)
			}
		}
		cfg.endpoints = args
	case "tls":
		if len(args) != 3 {
			return c.Errf("tls needs three files: CERT KEY CACERT, got %d", len(args))
		}
		cfg.tlsCert, cfg.tlsKey, cfg.tlsCA = args[0], args[1], args[2]
	case "prefix":
		if len(args) != 1 {
			return c.Errf("prefix needs one key prefix, e.g. prefix %s", registry.DefaultPrefix)
		}
		if _, err := registry.NewKeys(args[0]); err != nil {
			return c.Errf("prefix: %v", err)
		}
		cfg.prefix = args[0]
	case "ttl":
		if len(args) != 1 {
			return c.Errf("ttl needs one number of seconds, e.g. ttl %d", defaultTTL)
		}
		t, err := strconv.ParseUint(args[0], 10, 31)
		if err != nil {
			return c.Errf("ttl %q is not a number of seconds (0 to 2147483647)", args[0])
		}
		cfg.ttl = uint32(t)
	case "network":
		if len(args) < 2 {
			return c.Errf("network needs a name and at least one CIDR, e.g. network vpn0 10.100.0.0/16")
		}
		n := network{name: args[0]}
		if err := registry.CheckName("network", n.name); err != nil {
			return c.Errf("network: %v", err)
		}
		if n.name == registry.PublicNetwork {
			return c.Errf("network %s is the default network and cannot be declared: name an overlay", n.name)
		}
		for _, x := range cfg.nets {
			if x.name == n.name {
				return c.Errf("network %s is declared twice", n.name)
			}
		}
		if len(cfg.nets) == maxNetworks {
			return c.Errf("more than %d networks in one block", maxNetworks)
		}
		for _, a := range args[1:] {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return c.Errf("network %s: %q is not a CIDR such as 10.100.0.0/16 or fd00::/64", n.name, a)
			}
			n.prefixes = append(n.prefixes, p.Masked())
		}
		cfg.nets = append(cfg.nets, n)
		cfg.markView(c, "network")
	case "local":
		if len(args) != 1 {
			return c.Errf("local needs the name of this host, as registered, e.g. local host1")
		}
		if err := registry.CheckName("host", args[0]); err != nil {
			return c.Errf("local: %v", err)
		}
		cfg.local = args[0]
		cfg.markView(c, "local")
	case "ecs":
		if len(args) != 0 {
			return c.Errf("ecs takes no arguments")
		}
		cfg.ecs = true
		cfg.markView(c, "ecs")
	case "max_answers":
		if len(args) != 1 {
			return c.Errf("max_answers needs one number of instances, e.g. max_answers 100")
		}
		n, err := strconv.ParseUint(args[0], 10, 16)
		if err != nil || n == 0 {
			return c.Errf("max_answers %q is not a number of instances from 1 to 65535 (leave the option out for no limit)", args[0])
		}
		cfg.maxAnswers = int(n)
	case "fail_open":
		// A service with no instance passing or warning answers with its
		// critical ones (on), or with none (off): docs/DESIGN.md, "Health".
		if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
			return c.Errf("fail_open needs on or off (on, the default, serves a service's critical instances when it has no passing or warning one)")
		}
		cfg.failClosed = args[0] == "off"
	case "hostview":
		if len(args) != 0 {
			return c.Errf("hostview takes no arguments")
		}
		cfg.hostview = true
		cfg.hostviewLine = fmt.Sprintf("%s:%d", c.File(), c.Line())
		cfg.markView(c, "hostview")
	case "relist_jitter":
		if len(args) != 1 {
			return c.Errf("relist_jitter needs one duration, e.g. relist_jitter 5s (0 lists at once)")
		}
		d, err := time.ParseDuration(args[0])
		if err != nil || d < 0 || d > maxRelistJitter {
			return c.Errf("relist_jitter %q is not a duration from 0 to %v, such as 500ms or 5s (0 lists at once)", args[0], maxRelistJitter)
		}
		cfg.relistJitter = d
	case "http":
		if cfg.http != nil {
			return c.Errf("http is given twice: one address per block")
		}
		h, err := parseHTTP(c, args)
		if err != nil {
			return err
		}
		cfg.http = h
	case "fallthrough":
		cfg.fall.SetZonesFromArgs(args)
	default:
		return c.Errf("unknown option %q: expected endpoint, tls, prefix, ttl, network, local, ecs, hostview, max_answers, fail_open, relist_jitter, http or fallthrough", opt)
	}
	return nil
}

func (cfg *config) markView(c *caddy.Controller, directive string) {
	if cfg.viewDependent {
		return
	}
	cfg.viewDependent = true
	cfg.viewDirective = directive
	cfg.viewLine = fmt.Sprintf("%s:%d", c.File(), c.Line())
}
