package testkit

import (
	"errors"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartMembers restarts the stopped members with the given indexes at once,
// on their ports and data, and fails the test when one does not come up.
// Members that restart together after a whole-cluster outage must start
// concurrently: a member is ready only once a quorum of them is back, so
// starting them one by one would wait on the first for ever.
//
// A stopped member's ports are free ports of the ephemeral range, so while
// it is down any outgoing connection on the machine may take one as its
// source port for a moment. A start that finds its port taken is retried
// for a while, and what held the port is logged.
func (c *Cluster) StartMembers(t testing.TB, idx ...int) {
	t.Helper()
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for i, n := range idx {
		wg.Go(func() { errs[i] = c.Members[n].startRetrying(t) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("restart members %v: %v", idx, err)
	}
}

// startRetrying is start, retried for up to 30s while a port is in use.
func (m *Etcd) startRetrying(t testing.TB) error {
	deadline := time.Now().Add(30 * time.Second)
	logged := false
	for {
		err := m.start()
		inUse := err != nil && (errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use"))
		if !inUse || time.Now().After(deadline) {
			return err
		}
		if !logged {
			out, _ := exec.Command("ss", "-tanp").CombinedOutput()
			var held []string
			for _, line := range strings.Split(string(out), "\n") {
				for _, u := range []string{m.ClientURL, m.PeerURL} {
					if i := strings.LastIndex(u, ":"); i > 0 && strings.Contains(line, "127.0.0.1"+u[i:]+" ") {
						held = append(held, line)
					}
				}
			}
			t.Logf("etcd member %s: %v; retrying. Sockets on its ports:\n%s", m.Name, err, strings.Join(held, "\n"))
			logged = true
		}
		time.Sleep(200 * time.Millisecond)
	}
}
