package rollcall_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rollcall/rollcall/plugin/rollcall"
	"github.com/rollcall/rollcall/registry"
	"github.com/rollcall/rollcall/test/testkit"
)

// TestReader runs two Readers of one prefix: each lists it, follows a write
// and reports every revision it serves, and neither shares the other's
// loader (closing one leaves the other following).
func TestReader(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	keys := registry.MustKeys("/rcreader")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	put := func(host string) int64 {
		t.Helper()
		v, err := registry.EncodeInstance(&registry.Instance{Service: "web", Host: host})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cli.Put(ctx, keys.Instance(host, "web"), string(v))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	first := put("h1")

	type seen struct {
		sync.Mutex
		revs []int64
	}
	var got [2]seen
	var readers [2]*rollcall.Reader
	for i := range readers {
		r, err := rollcall.NewReader(rollcall.ReaderConfig{
			Endpoints: e.Endpoints(), Prefix: "/rcreader", RelistJitter: -1,
			OnApplied: func(rev int64) {
				got[i].Lock()
				got[i].revs = append(got[i].revs, rev)
				got[i].Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		readers[i] = r
		defer r.Close()
		if err := r.WaitLoaded(ctx); err != nil {
			t.Fatal(err)
		}
		if r.Revision() < first || r.Instances() != 1 || r.Lists() != 1 {
			t.Fatalf("reader %d after its list: revision %d, %d instances, %d lists; want >= %d, 1, 1", i, r.Revision(), r.Instances(), r.Lists(), first)
		}
	}
	readers[0].Close()
	second := put("h2")
	r := readers[1]
	testkit.Eventually(t, 10*time.Second, "the second reader serves the write", func() bool { return r.Revision() >= second })
	if r.Instances() != 2 || r.Status() != "watching" || r.FailedReads() != 0 {
		t.Errorf("after a write: %d instances, status %q, %d failed reads; want 2, watching, 0", r.Instances(), r.Status(), r.FailedReads())
	}
	got[1].Lock()
	defer got[1].Unlock()
	if n := len(got[1].revs); n < 2 || got[1].revs[n-1] < second {
		t.Errorf("revisions applied: %v, want the list's and then %d", got[1].revs, second)
	}
}
