package etcdconn

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// reconnectBackoff paces the client's attempts to reconnect to an endpoint
// that went away. gRPC's default grows to 120s between attempts, so after an
// etcd outage of a minute or two the DNS plugin and the agents would go on
// serving stale state, and failing to register, for up to two more minutes
// once etcd is back (measured: 17s after a 30s outage). Attempts every 2s at
// most keep the catch-up short; a dial to loopback or a LAN costs nothing
// beside that.
var reconnectBackoff = backoff.Config{
	BaseDelay:  100 * time.Millisecond,
	Multiplier: 1.6,
	Jitter:     0.2,
	MaxDelay:   2 * time.Second,
}

// dialOptions are the gRPC options every rollcall etcd client dials with.
func dialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           reconnectBackoff,
		MinConnectTimeout: 5 * time.Second,
	})}
}
