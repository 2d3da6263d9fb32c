package testkit

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
)

var (
	portMu   sync.Mutex
	usedPort = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that is free now and that this
// process has not handed out before (the kernel may reuse a port it just
// freed, and two servers of one test must not race for it).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := TryFreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TryFreePort is FreePort returning the error.
//
// Ports come from below the kernel's ephemeral range (32768-60999 by
// default), at random: a port the kernel hands out for "127.0.0.1:0" is
// one it also hands to outgoing connections, and test packages running in
// parallel open many (etcd clients, DNS queries), so such a port was often
// taken again before the server that was to use it could bind it.
func TryFreePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	lo, hi := portRange()
	for i := 0; i < 200; i++ {
		p := lo + rand.IntN(hi-lo)
		if usedPort[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		// The port must be free for UDP too (DNS servers take both).
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", itoa(p)))
		if err != nil {
			continue
		}
		u.Close()
		usedPort[p] = true
		return p, nil
	}
	return 0, errors.New("no free port found in 200 tries")
}

// portRange is where TryFreePort draws ports: from 10000 up to the start of
// the kernel's ephemeral range.
func portRange() (lo, hi int) {
	lo, hi = 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var first, last int
		if _, err := fmt.Sscan(string(b), &first, &last); err == nil && first > lo+1000 {
			hi = first
		}
	}
	return lo, hi
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			break
		}
	}
	return string(b[n:])
}
