package devmode

import (
	"errors"
	"fmt"
	"net"
)

// portUse is one address `rollcall dev` will listen on, what for, and the
// flag that moves it.
type portUse struct {
	netw, addr string
	what, flag string
}

// portUses lists every address c listens on.
func (c Config) portUses() []portUse {
	client, _ := hostPort(c.ClientURL)
	peer, _ := hostPort(c.PeerURL)
	uses := []portUse{
		{netw: "tcp", addr: client, what: "etcd client", flag: c.ClientFlag},
		{netw: "tcp", addr: peer, what: "etcd peer", flag: c.PeerFlag},
		{netw: "udp", addr: c.DNSAddr, what: "DNS (UDP)", flag: c.DNSFlag},
		{netw: "tcp", addr: c.DNSAddr, what: "DNS (TCP)", flag: c.DNSFlag},
	}
	if c.HTTPAddr != HTTPOff {
		uses = append(uses, portUse{netw: "tcp", addr: c.HTTPAddr, what: "HTTP API and status page", flag: c.HTTPFlag})
	}
	return uses
}

// ErrPortTaken is wrapped by the error of a port that is in use.
var ErrPortTaken = errors.New("port taken")

// checkPorts listens on every address once and closes it again, so that a
// taken port stops `rollcall dev` before it starts anything. (Something may
// still take a port in the instant between; then the part that needs it fails
// to start, with its own error.)
func checkPorts(uses []portUse) error {
	var errs []error
	for _, u := range uses {
		var err error
		switch u.netw {
		case "udp":
			var pc net.PacketConn
			if pc, err = net.ListenPacket(u.netw, u.addr); err == nil {
				pc.Close()
			}
		default:
			var l net.Listener
			if l, err = net.Listen(u.netw, u.addr); err == nil {
				l.Close()
			}
		}
		if err != nil {
			_, port, _ := net.SplitHostPort(u.addr)
			errs = append(errs, fmt.Errorf("%w: port %s for %s (%s/%s) is not free: %v; stop what uses it or choose another with %s",
				ErrPortTaken, port, u.what, u.addr, u.netw, unwrapOp(err), u.flag))
		}
	}
	return errors.Join(errs...)
}

// unwrapOp drops net.OpError's repetition of the address.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
