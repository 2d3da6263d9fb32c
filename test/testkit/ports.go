package testkit

import (
	"errors"
	"fmt"
	"net"
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
func TryFreePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for i := 0; i < 100; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// The port must be free for UDP too (DNS servers take both).
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", itoa(p)))
		if err != nil {
			continue
		}
		u.Close()
		if !usedPort[p] {
			usedPort[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free port found in 100 tries")
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
