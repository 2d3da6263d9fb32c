// Package corednsbuild is rollcall's CoreDNS build: the plugins compiled in and
// their order in the chain. bin/coredns, `rollcall dev` and the tests that
// start CoreDNS in-process all use it, so they run the same server.
//
// It is build configuration, the whole of bin/coredns but for main, and sits
// with the command libraries (internal/README.md): it imports the plugin and
// only commands, command libraries and tests import it. It lives in
// internal/ rather than beside cmd/coredns because `rollcall dev`
// (internal/devmode) and the tests start the same server.
package corednsbuild

import (
	"github.com/coredns/coredns/core/dnsserver"

	// The stock plugins, in no particular order: their place in the chain is
	// set by Directives, not by import order.
	_ "github.com/coredns/caddy/onevent"
	_ "github.com/coredns/coredns/plugin/acl"
	_ "github.com/coredns/coredns/plugin/any"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/bufsize"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/cancel"
	_ "github.com/coredns/coredns/plugin/chaos"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/etcd"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/header"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metadata"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/minimal"
	_ "github.com/coredns/coredns/plugin/multisocket"
	_ "github.com/coredns/coredns/plugin/nsid"
	_ "github.com/coredns/coredns/plugin/pprof"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/rewrite"
	_ "github.com/coredns/coredns/plugin/root"
	_ "github.com/coredns/coredns/plugin/template"
	_ "github.com/coredns/coredns/plugin/timeouts"
	_ "github.com/coredns/coredns/plugin/transfer"
	_ "github.com/coredns/coredns/plugin/view"
	_ "github.com/coredns/coredns/plugin/whoami"
	_ "github.com/rollcall/rollcall/plugin/rollcall"
)

// Directives is the plugin chain order. A query passes the plugins in this
// order; rollcall sits after acl and cache (so access control applies first,
// and rollcall's setup can refuse a view-dependent block that also caches)
// and before the plugins that answer from other sources. file, etcd and
// whoami are compiled in as the benchmarks' yardsticks.
var Directives = []string{
	"root", "metadata", "cancel", "timeouts", "multisocket", "reload", "nsid", "bufsize",
	"bind", "debug", "ready", "health", "pprof", "prometheus", "errors", "log",
	"any", "chaos", "loadbalance", "rewrite", "acl", "cache", "header",
	"minimal", "template", "transfer", "rollcall",
	"hosts", "file", "etcd", "loop", "forward", "whoami", "on", "view",
}

func init() {
	// Importing this package is what makes a process rollcall's CoreDNS.
	dnsserver.Directives = Directives
}
