package servicereg

import "time"

// retryDelay bounds the back-off between failed etcd operations by half the
// lease TTL. After an etcd outage longer than the TTL the agent has given
// its lease up, but etcd, once back, restores that lease with a fresh TTL
// and then expires it, taking the host's names with it: the agent must grant
// a new lease and rewrite its keys before that, or its names vanish from
// DNS until its next attempt although its units ran all along.
func retryDelay(backoff, ttl time.Duration) time.Duration {
	if ttl > 0 && backoff > ttl/2 {
		return ttl / 2
	}
	return backoff
}
