package rollcall

import (
	"context"
	"testing"
	"time"

	"github.com/coredns/caddy"

	"github.com/rollcall/rollcall/test/testkit"
)

// TestAcquireRelease checks the process-wide loader registry: blocks with
// the same etcd and prefix share one loader, which outlives all but the last
// release (as across a reload, where new blocks start before old ones stop).
func TestAcquireRelease(t *testing.T) {
	e := testkit.StartEtcd(t)
	testkit.Put(t, e.Client(t), "/rollcall/hosts/h1/services/web", `{"service":"web","host":"h1"}`)
	cfg := func(zone string) *config {
		c, err := parse(caddy.NewTestController("dns", "rollcall "+zone+" {\nendpoint "+e.ClientURL+"\n}"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, err := acquire(cfg("a.example."))
	if err != nil {
		t.Fatal(err)
	}
	b, err := acquire(cfg("b.example."))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("two loaders for one etcd and prefix")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.waitLoaded(ctx); err != nil {
		t.Fatalf("not loaded: %v", err)
	}
	a.release()
	select {
	case <-b.done:
		t.Fatalf("loader stopped while a block still uses it")
	default:
	}
	ix := newIndex(nil, "")
	b.subscribe(ix)
	if ix.services["web"] == nil {
		t.Errorf("late subscriber not filled from the loaded state")
	}
	b.unsubscribe(ix)
	b.release()
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("loader still running after the last release")
	}
	if n := Loaders(); n != 0 {
		t.Errorf("%d loaders registered after the last release", n)
	}
}
