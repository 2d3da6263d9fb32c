package regwatch

import "time"

// lag follows whether a watch keeps up with etcd. A watch that is merely
// busy reaches every revision etcd reported a moment later; a stuck one
// stays short of the same revision.
type lag struct {
	target int64     // a revision etcd reported that the watch had not delivered
	since  time.Time // when target was first reported
}

// stuck takes etcd's revision now (read through a member with a leader) and
// the revision the watch has delivered, and says whether the watch has been
// short of the same reported revision for longer than limit.
func (g *lag) stuck(etcdRev, delivered int64, now time.Time, limit time.Duration) bool {
	if delivered >= g.target {
		g.target = 0 // caught up with what etcd reported before
	}
	if etcdRev <= delivered {
		return false
	}
	if g.target == 0 {
		g.target, g.since = etcdRev, now
		return false
	}
	return now.Sub(g.since) > limit
}
