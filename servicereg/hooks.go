package servicereg

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// presenceHook is the seam for master elections (and anything else that must
// follow the agent's decisions of what is in service). The main loop calls
// it, never concurrently and in order:
//
//   - leaseChanged(ctx, id) after every lease grant, and with id 0 when the
//     lease is lost, revoked or the agent stops, or lapses (no renewal for
//     a whole TTL: it may be gone); after a lapse, with the same id again
//     when a renewal goes through (etcd kept it);
//   - inServiceChanged(ctx, svc, in, why) when a service comes into service
//     (its record is written, its state passing or warning by
//     registry.State.InService, and no maintenance holds it) or leaves it
//     (also when it leaves the config: in false); why says, when in is
//     false, what took it out ("unit not active", "instance critical", "in
//     maintenance: ...").
//
// A hook must return quickly: a campaign that waits to be elected runs in the
// hook's own goroutine, stopped by ctx (the agent's run context) or by the next
// call. The intended election hook: campaign on the current lease when a
// master_election service comes into service and a lease is held; resign
// when it leaves service or the lease is lost.
type presenceHook interface {
	leaseChanged(ctx context.Context, id clientv3.LeaseID)
	inServiceChanged(ctx context.Context, svc Service, in bool, why string)
}

// hookFactories build the hooks of a new Agent. An election file adds itself
// here from an init func, so that wiring elections in touches no other file.
var hookFactories []func(a *Agent) (presenceHook, error)
