package rollcall

import (
	"context"
	"testing"
	"time"

	"github.com/coredns/caddy"
	dto "github.com/prometheus/client_model/go"

	"github.com/rollcall/rollcall/test/testkit"
)

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
