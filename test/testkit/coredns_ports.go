package testkit

import (
	"strings"
	"syscall"
	"testing"
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
		c, err = NewCoreDNS(cf)
		if err == nil {
			closeAtEnd(t, c)
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
