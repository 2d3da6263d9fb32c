package regwatch

import (
	"testing"
	"time"
)

// TestRelistJitterBound: the bound a reader sets is the one the Watcher
// draws its re-list delays under; 0 takes the default, and a negative bound
// turns the delay off (the plugin's `relist_jitter 0`).
func TestRelistJitterBound(t *testing.T) {
	for _, tt := range []struct {
		set, want time.Duration
	}{
		{0, DefaultRelistJitter},
		{-1, 0},
		{250 * time.Millisecond, 250 * time.Millisecond},
		{time.Minute, time.Minute},
	} {
		w, err := New(nil, Config{Prefix: "/p/", RelistJitter: tt.set}, Callbacks{})
		if err != nil {
			t.Fatal(err)
		}
		got := w.Config().RelistJitter
		if got != tt.want {
			t.Errorf("RelistJitter %v: the Watcher uses %v, want %v", tt.set, got, tt.want)
		}
		b := w.relistDelays() // what Run draws each re-list's delay from
		for range 1000 {
			if d := b.Next(); d < 0 || d > tt.want {
				t.Fatalf("RelistJitter %v: a re-list delay of %v, want it within [0, %v]", tt.set, d, tt.want)
			}
		}
	}
}
