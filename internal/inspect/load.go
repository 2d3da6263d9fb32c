package inspect

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
)

// Load lists every key under keys at one revision, asks etcd for the time
// left on each lease seen, and builds the Snapshot. A lease that expires
// between the list and the question shows TTL -1.
func Load(ctx context.Context, cli *clientv3.Client, keys registry.Keys) (*Snapshot, error) {
	resp, err := cli.Get(ctx, keys.All(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list %s in etcd %v: %w", keys.All(), cli.Endpoints(), err)
	}
	kvs := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
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
	return Build(keys, resp.Header.Revision, kvs, ttls), nil
}
