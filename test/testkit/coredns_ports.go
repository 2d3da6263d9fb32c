package testkit

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
)

// StartCoreDNSPorts starts CoreDNS from the Corefile that corefile returns
// for n ports from FreePort, and returns the server and those ports. When one
// of them is taken by the time CoreDNS binds it, it tries again with new
// ports (up to 5 times): FreePort can only say a port was free, and on a busy
// machine another process's connection may get it meanwhile. Use it for
// ports that must be known before the start (a prometheus listener, a port
// shared by several server blocks); plain StartCoreDNS with port 0 needs
// none of this. The server is stopped when the test ends.
func StartCoreDNSPorts(t testing.TB, n int, corefile func(ports []int) string) (*CoreDNS, []int) {
	t.Helper()
	var err error
	for try := 0; try < 5; try++ {
		ports := make([]int, n)
		for i := range ports {
			ports[i] = FreePort(t)
		}
		cf := corefile(ports)
		var c *CoreDNS
		c, err = tryStartCoreDNS(cf)
		if err == nil {
			t.Cleanup(func() { c.Stop() })
			return c, ports
		}
		// caddy formats the listen error with %v, so match its text.
		if !strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) {
			t.Fatalf("start CoreDNS: %v\nCorefile:\n%s", err, cf)
		}
		t.Logf("start CoreDNS: %v; trying other ports", err)
	}
	t.Fatalf("start CoreDNS: %v, five times", err)
	return nil, nil
}

// tryStartCoreDNS is StartCoreDNS returning the error instead of failing.
func tryStartCoreDNS(corefile string) (*CoreDNS, error) {
	caddyMu.Lock()
	caddy.Quiet = true
	dnsserver.Quiet = true
	inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "Corefile", ServerTypeName: "dns"})
	caddyMu.Unlock()
	if err != nil {
		if inst != nil {
			// Plugins may have started (OnStartup) before a listener
			// failed: let them release what they hold.
			inst.ShutdownCallbacks()
			_ = inst.Stop()
		}
		return nil, fmt.Errorf("start CoreDNS: %w", err)
	}
	c := &CoreDNS{Instance: inst}
	if srvs := inst.Servers(); len(srvs) > 0 {
		if a := srvs[0].LocalAddr(); a != nil {
			c.UDP = a.String()
		}
		if a := srvs[0].Addr(); a != nil {
			c.TCP = a.String()
		}
	}
	return c, nil
}
