package fault

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestProxyCutAndHeal: bytes pass until Cut; while cut, connections stay
// open (old and new) and no byte passes; Heal closes the connections that
// lived through the cut and forwards new ones again.
func TestProxyCutAndHeal(t *testing.T) {
	// An echo server is the target.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	px, err := NewProxy(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()

	echo := func(c net.Conn, wantEcho bool) {
		t.Helper()
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatalf("write: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		line, err := bufio.NewReader(c).ReadString('\n')
		switch {
		case wantEcho && (err != nil || line != "ping\n"):
			t.Fatalf("echo through the proxy: %q %v", line, err)
		case !wantEcho && !errors.Is(err, os.ErrDeadlineExceeded):
			t.Fatalf("through the cut: %q %v, want nothing (a read timeout)", line, err)
		}
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", px.Addr())
		if err != nil {
			t.Fatalf("dial the proxy: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	old := dial()
	echo(old, true)
	px.Cut()
	echo(old, false)
	during := dial() // accepted, but a blackhole
	echo(during, false)
	px.Heal()
	for _, c := range []net.Conn{old, during} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a connection that lived through the cut is still open after Heal: %v", err)
		}
	}
	echo(dial(), true)
}
