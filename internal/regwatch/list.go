package regwatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultPageSize is how many keys one request of a list reads: about
// 1.5 MiB of registry records, so that one request never holds etcd (or
// the reader) to the whole registry, while a list of 100,000 instances
// takes 10 round trips. Pages of 1,000 (etcd's own mirror) made that list
// 100 sequential requests and the plugin's first sync 1.2 s slower.
const DefaultPageSize = 10000

// List reads every key under prefix at one revision, pageSize keys (0:
// DefaultPageSize) per request, and returns them in key order with that
// revision: the same data as one Get of the whole prefix, without making etcd
// build, and the client receive, one response the size of the registry.
//
// The first page is read at etcd's current revision and the rest at that
// same revision, so the pages add up to one consistent view. When etcd
// compacts that revision away before the last page, List fails with an error
// wrapping ErrCompacted: list again, at a newer revision. ctx bounds the
// whole list.
func List(ctx context.Context, cli *clientv3.Client, prefix string, pageSize int64) ([]*mvccpb.KeyValue, int64, error) {
	kvs, hdr, err := listPages(ctx, cli, prefix, pageSize, 0)
	if err != nil {
		return nil, 0, err
	}
	return kvs, hdr.Revision, nil
}

// listPages is List with a bound on each request (0: none) instead of the
// whole, so that a large registry on a slow link is not cut short while an
// unreachable etcd still shows within one timeout; it returns the first
// page's header.
func listPages(ctx context.Context, kv clientv3.KV, prefix string, pageSize int64, pageTimeout time.Duration) ([]*mvccpb.KeyValue, *etcdserverpb.ResponseHeader, error) {
	if prefix == "" {
		// An empty prefix would mean every key in etcd: never what a
		// reader of the registry wants.
		return nil, nil, errors.New("regwatch: list: empty prefix")
	}
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	end := clientv3.GetPrefixRangeEnd(prefix)
	var (
		kvs []*mvccpb.KeyValue
		hdr *etcdserverpb.ResponseHeader
	)
	for key := prefix; ; {
		// etcd returns a range in key order, so each page starts right
		// after the last key of the one before.
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(pageSize)}
		if hdr != nil {
			opts = append(opts, clientv3.WithRev(hdr.Revision))
		}
		resp, err := getPage(ctx, kv, key, pageTimeout, opts)
		if err != nil {
			at := "current revision"
			if hdr != nil {
				at = fmt.Sprintf("revision %d, %d keys read", hdr.Revision, len(kvs))
			}
			if errors.Is(err, rpctypes.ErrCompacted) {
				return nil, nil, fmt.Errorf("list %s at %s: %w: %w", prefix, at, ErrCompacted, err)
			}
			return nil, nil, fmt.Errorf("list %s at %s: %w", prefix, at, err)
		}
		if hdr == nil {
			hdr = resp.Header
			// Count is every key in the range at this revision: the
			// whole list, allocated once.
			kvs = make([]*mvccpb.KeyValue, 0, resp.Count)
		}
		kvs = append(kvs, resp.Kvs...)
		if !resp.More || len(resp.Kvs) == 0 {
			return kvs, hdr, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func getPage(ctx context.Context, kv clientv3.KV, key string, timeout time.Duration, opts []clientv3.OpOption) (*clientv3.GetResponse, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return kv.Get(ctx, key, opts...)
}
