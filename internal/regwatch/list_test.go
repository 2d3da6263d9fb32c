package regwatch

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/test/testkit"
)

// betweenPages is a clientv3.KV that counts Gets and runs a function after
// each one, so a test can change etcd while a list is between two pages.
type betweenPages struct {
	clientv3.KV
	gets  int
	after func(n int)
}

func (b *betweenPages) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	r, err := b.KV.Get(ctx, key, opts...)
	b.gets++
	if err == nil && b.after != nil {
		b.after(b.gets)
	}
	return r, err
}

func keysOf(kvs []*mvccpb.KeyValue) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, string(kv.Key))
	}
	return out
}

// TestListPaged: a list of more keys than a page reads them in pages, all at
// the first page's revision: writes made between pages (a new key, a
// deleted one, a changed value) are not in it, and the result is exactly
// what one Get of the prefix at that revision holds. Keys beside the prefix
// (sharing its first bytes, or sorting just before or after it) stay out.
func TestListPaged(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	const n = 35
	for _, k := range []string{"/p", "/o/x", "/p0", "/q", "/p.x"} {
		testkit.Put(t, cli, k, "outside")
	}
	for i := range n {
		testkit.Put(t, cli, fmt.Sprintf("/p/k%02d", i), fmt.Sprint(i))
	}
	kv := &betweenPages{KV: cli, after: func(page int) {
		if page != 1 {
			return
		}
		testkit.Put(t, cli, "/p/k00a", "new")
		testkit.Delete(t, cli, "/p/k20")
		testkit.Put(t, cli, "/p/k30", "changed")
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kvs, hdr, err := listPages(ctx, kv, "/p/", 10, time.Second)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if kv.gets != 4 {
		t.Errorf("%d requests for %d keys in pages of 10, want 4", kv.gets, n)
	}
	want, err := cli.Get(ctx, "/p/", clientv3.WithPrefix(), clientv3.WithRev(hdr.Revision))
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Kvs) != n {
		t.Fatalf("reference read holds %d keys, want %d", len(want.Kvs), n)
	}
	if got, w := keysOf(kvs), keysOf(want.Kvs); fmt.Sprint(got) != fmt.Sprint(w) {
		t.Fatalf("paged list:\n%v\nwant one read at revision %d:\n%v", got, hdr.Revision, w)
	}
	for i, kv := range kvs {
		if string(kv.Value) != fmt.Sprint(i) || kv.ModRevision > hdr.Revision {
			t.Errorf("%s = %q at revision %d: not as of revision %d", kv.Key, kv.Value, kv.ModRevision, hdr.Revision)
		}
	}

	// The exported List reads the same, in pages of its own.
	all, rev, err := List(ctx, cli, "/p/", 7)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(all) != n || rev <= hdr.Revision {
		t.Errorf("List after the writes: %d keys at revision %d, want %d at a revision past %d", len(all), rev, n, hdr.Revision)
	}
	if _, _, err := List(ctx, cli, "", 7); err == nil {
		t.Errorf("List of an empty prefix (all of etcd) did not fail")
	}
}

// TestListCompactedBetweenPages: when etcd compacts the list's revision
// before its last page, the list fails with ErrCompacted (and etcd's own
// error), for the caller to list again.
func TestListCompactedBetweenPages(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	for i := range 5 {
		testkit.Put(t, cli, fmt.Sprintf("/p/k%d", i), "v")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv := &betweenPages{KV: cli, after: func(page int) {
		if page == 1 {
			r := testkit.Put(t, cli, "/p/k0", "again")
			if _, err := cli.Compact(ctx, r.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
				t.Errorf("compact: %v", err)
			}
		}
	}}
	_, _, err := listPages(ctx, kv, "/p/", 2, time.Second)
	if !errors.Is(err, ErrCompacted) || !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("list across a compaction: %v, want ErrCompacted", err)
	}
	t.Logf("error: %v", err)
}
