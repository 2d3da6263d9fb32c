package inspect

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/regwatch"
	"github.com/rollcall/rollcall/registry"
)

// Load lists every key under keys at one revision, asks etcd for the time
// left on each lease seen, and builds the Snapshot. A lease that expires
// between the list and the question shows TTL -1. The list is paged, as every
// reader of the registry reads it (regwatch.List): a large registry is not
// one response etcd must build whole.
func Load(ctx context.Context, cli *clientv3.Client, keys registry.Keys) (*Snapshot, error) {
	listed, rev, err := regwatch.List(ctx, cli, keys.All(), 0)
	if err != nil {
		return nil, fmt.Errorf("etcd %v: %w", cli.Endpoints(), err)
	}
	kvs := make([]KV, len(listed))
	for i, kv := range listed {
		kvs[i] = KV{Key: string(kv.Key), Value: kv.Value, Lease: kv.Lease, CreateRevision: kv.CreateRevision}
	}
	ttls := map[int64]LeaseTTL{}
	for _, id := range Leases(kvs) {
		// etcd answers TTL -1 (not an error) for a lease it no longer has.
		r, err := cli.TimeToLive(ctx, clientv3.LeaseID(id))
		if err != nil {
			return nil, fmt.Errorf("time to live of lease %s: %w", LeaseHex(id), err)
		}
		ttls[id] = LeaseTTL{TTL: r.TTL, Granted: r.GrantedTTL}
	}
	return Build(keys, rev, kvs, ttls), nil
}
