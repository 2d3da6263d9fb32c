package rollcall

import (
	"context"
	"testing"
	"time"

	"github.com/coredns/caddy"
	dto "github.com/prometheus/client_model/go"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestLagStuck: a watch is stuck only when it stays short of the same
// revision etcd reported for longer than the limit; a busy watch that keeps
// reaching earlier reports while etcd moves on is not.
func TestLagStuck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const limit = 6 * time.Second
	type obs struct {
		at              time.Duration // since t0
		etcd, delivered int64
		want            bool
	}
	tests := []struct {
		name string
		obs  []obs
	}{
		{name: "current", obs: []obs{{at: 0, etcd: 10, delivered: 10, want: false}, {at: 10 * time.Second, etcd: 10, delivered: 10, want: false}}},
		{name: "etcd not ahead of the watch", obs: []obs{{at: 0, etcd: 9, delivered: 10, want: false}}},
		{name: "behind for less than the limit", obs: []obs{{at: 0, etcd: 12, delivered: 10, want: false}, {at: 5 * time.Second, etcd: 13, delivered: 10, want: false}}},
		{name: "behind the same report past the limit", obs: []obs{{at: 0, etcd: 12, delivered: 10, want: false}, {at: 4 * time.Second, etcd: 14, delivered: 11, want: false}, {at: 7 * time.Second, etcd: 15, delivered: 11, want: true}}},
		{name: "busy: each report reached, etcd always ahead", obs: []obs{
			{at: 0, etcd: 12, delivered: 10, want: false}, {at: 4 * time.Second, etcd: 16, delivered: 12, want: false}, {at: 8 * time.Second, etcd: 20, delivered: 16, want: false}, {at: 12 * time.Second, etcd: 24, delivered: 20, want: false}}},
		{name: "caught up resets", obs: []obs{{at: 0, etcd: 12, delivered: 10, want: false}, {at: 4 * time.Second, etcd: 12, delivered: 12, want: false}, {at: 8 * time.Second, etcd: 14, delivered: 12, want: false}, {at: 13 * time.Second, etcd: 14, delivered: 12, want: false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g lag
			for i, o := range tt.obs {
				if got := g.stuck(o.etcd, o.delivered, t0.Add(o.at), limit); got != o.want {
					t.Fatalf("observation %d (%+v): stuck %v, want %v", i, o, got, o.want)
				}
			}
		})
	}
}

// TestForeignWritesKeepWatch: writes outside the prefix move etcd's
// revision past anything the watch delivers as events; progress
// notifications must cover them, so a healthy watch is never taken for a
// stuck one and never re-listed, however long etcd keeps ahead.
func TestForeignWritesKeepWatch(t *testing.T) {
	SetLoaderTiming(t, 50*time.Millisecond, 300*time.Millisecond, 100*time.Millisecond)
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	testkit.Put(t, cli, "/rollcall/hosts/h1/services/web", `{"service":"web","host":"h1"}`)
	c, err := parse(caddy.NewTestController("dns", "rollcall example.org {\nendpoint "+e.ClientURL+"\n}"))
	if err != nil {
		t.Fatal(err)
	}
	ld, err := acquire(c)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ld.waitLoaded(ctx); err != nil {
		t.Fatalf("not loaded: %v", err)
	}
	lists := listsOf(t, ld)
	// Many stale periods of foreign writes.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		testkit.Put(t, cli, "/other/key", time.Now().String())
		time.Sleep(5 * time.Millisecond)
	}
	if got := listsOf(t, ld); got != lists {
		t.Errorf("lists went from %v to %v: a healthy watch was taken for a stuck one", lists, got)
	}
	if s := ld.getStatus(); s != stateWatching {
		t.Errorf("status %q after foreign writes, want %q", s, stateWatching)
	}
}

func listsOf(t *testing.T, ld *loader) float64 {
	var m dto.Metric
	if err := listsTotal.WithLabelValues(ld.source).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
