package regwatch

import (
	"testing"
	"time"
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
