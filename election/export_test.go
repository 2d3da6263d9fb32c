package election

import (
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/etcdconn"
)

// confirmed returns when the leadership ended, and the send time and TTL of
// its last confirmed renewal.
func (l *Leadership) confirmed() (endedAt, sent time.Time, ttl time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.endedAt, l.sent, l.ttl
}

// newClient returns a client the test closes itself.
func newClient(eps []string) (*clientv3.Client, error) {
	return etcdconn.New(etcdconn.Config{Endpoints: eps})
}
