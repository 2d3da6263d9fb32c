package election

import (
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/test/testkit"
)

// BenchmarkResignHandover measures one hand-over: the master resigns and the
// waiting candidate is elected (and has confirmed its lease).
func BenchmarkResignHandover(b *testing.B) {
	e := testkit.StartEtcd(b)
	cli := e.Client(b)
	ctx := context.Background()
	var cands [2]*Candidate
	for i, h := range []string{"host-a", "host-b"} {
		c, err := NewCandidate(cli, keys, "bench", h)
		if err != nil {
			b.Fatal(err)
		}
		cands[i] = c
	}
	cur, err := cands[0].Campaign(ctx, clientv3.NoLease)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		next := make(chan *Leadership, 1)
		c := cands[(i+1)%2]
		go func() {
			l, err := c.Campaign(ctx, clientv3.NoLease)
			if err != nil {
				b.Error(err)
			}
			next <- l
		}()
		testkit.Eventually(b, wait, "candidacy written", func() bool {
			r, err := cli.Get(ctx, keys.Election("bench")+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			return err == nil && r.Count == 2
		})
		b.StartTimer()
		if err := cur.Resign(ctx); err != nil {
			b.Fatal(err)
		}
		cur = <-next
		if cur == nil {
			b.FailNow()
		}
	}
	b.StopTimer()
	cur.Resign(ctx)
}
