package servicereg

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/test/testkit"
)

// recordingHook notes what the main loop tells the election seam.
type recordingHook struct {
	mu    sync.Mutex
	calls []string
	lease clientv3.LeaseID
}

func (h *recordingHook) leaseChanged(_ context.Context, id clientv3.LeaseID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lease = id
	if id == 0 {
		h.calls = append(h.calls, "lease lost")
	} else {
		h.calls = append(h.calls, "lease granted")
	}
}

func (h *recordingHook) inServiceChanged(_ context.Context, svc Service, in bool, _ string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, fmt.Sprintf("%s present=%v", svc.Name, in))
}

func (h *recordingHook) saw(call string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.calls, call)
}

func TestPresenceHooks(t *testing.T) {
	e := testkit.StartEtcd(t)
	cli := e.Client(t)
	h := &recordingHook{}
	saved := hookFactories
	hookFactories = append(slices.Clone(saved), func(*Agent) (presenceHook, error) { return h, nil })
	t.Cleanup(func() { hookFactories = saved })

	cfg := &Config{Host: "h1", Etcd: EtcdConfig{Endpoints: e.Endpoints()},
		Services: []Service{{Name: "db", MasterElection: true}}}
	a, err := New(cfg, Options{Logger: testLogger(t), NoSystemd: true})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	testkit.Eventually(t, wait, "lease granted reported", func() bool { return h.saw("lease granted") })

	// Stand in for the systemd watcher: db.service becomes active, then fails.
	a.unitsReported(map[string]UnitState{"db.service": {LoadState: "loaded", ActiveState: "active"}}, true)
	testkit.Eventually(t, wait, "db present reported", func() bool { return h.saw("db present=true") })
	a.unitsReported(map[string]UnitState{"db.service": {LoadState: "loaded", ActiveState: "failed"}}, true)
	testkit.Eventually(t, wait, "db absent reported", func() bool { return h.saw("db present=false") })

	// A lost lease is reported, then the new one.
	h.mu.Lock()
	lease := h.lease
	h.calls = nil
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, wait, "lease lost then granted reported", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return slices.Equal(h.calls, []string{"lease lost", "lease granted"}) && h.lease != lease
	})
}
