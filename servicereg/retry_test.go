package servicereg

import (
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	tests := []struct {
		name         string
		backoff, ttl time.Duration
		want         time.Duration
	}{
		{name: "short back-off kept", backoff: 100 * time.Millisecond, ttl: 10 * time.Second, want: 100 * time.Millisecond},
		{name: "long back-off under a long ttl kept", backoff: 5 * time.Second, ttl: 10 * time.Second, want: 5 * time.Second},
		{name: "back-off capped at half a short ttl", backoff: 5 * time.Second, ttl: 2 * time.Second, want: time.Second},
		{name: "no ttl known", backoff: 5 * time.Second, ttl: 0, want: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryDelay(tt.backoff, tt.ttl); got != tt.want {
				t.Fatalf("retryDelay(%v, %v) = %v, want %v", tt.backoff, tt.ttl, got, tt.want)
			}
		})
	}
}
