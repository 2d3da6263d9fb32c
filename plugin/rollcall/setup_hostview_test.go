package rollcall

// The `hostview` and `relist_jitter` options: how they parse, which errors
// name which line, and that the jitter reaches the running watcher.

import (
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"

	"github.com/rollcall/rollcall/internal/regwatch"
	"github.com/rollcall/rollcall/test/testkit"
)

func TestParseHostviewRelistJitter(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string // substring of the error; "" for success
		check   func(t *testing.T, c *config)
	}{
		{name: "defaults", input: "rollcall", check: func(t *testing.T, c *config) {
			if c.hostview || c.relistJitter != relistJitterUnset || c.relistDelay() != relistJitter {
				t.Errorf("hostview %v, relist_jitter %v (delay %v), want off and the default", c.hostview, c.relistJitter, c.relistDelay())
			}
		}},
		{name: "hostview", input: "rollcall {\nnetwork vpn0 10.100.0.0/16\nhostview\n}", check: func(t *testing.T, c *config) {
			if !c.hostview || !c.viewDependent || c.viewDirective != "network" {
				t.Errorf("hostview %v, view dependent %v (%s)", c.hostview, c.viewDependent, c.viewDirective)
			}
		}},
		{name: "hostview before its networks", input: "rollcall {\nhostview\nnetwork vpn0 10.100.0.0/16\n}", check: func(t *testing.T, c *config) {
			if !c.hostview || c.viewDirective != "hostview" || c.viewLine != "Testfile:2" {
				t.Errorf("hostview %v, view directive %s at %s", c.hostview, c.viewDirective, c.viewLine)
			}
		}},
		{name: "hostview with an argument", input: "rollcall {\nnetwork vpn0 10.100.0.0/16\nhostview on\n}", wantErr: "Testfile:3 - Error during parsing: hostview takes no arguments"},
		{name: "hostview without networks", input: "rollcall {\nttl 5\nhostview\nlocal h1\n}", wantErr: "Testfile:3 - Error during parsing: hostview gives a host's queries the networks its record lists, but this block declares no network"},
		{name: "relist_jitter", input: "rollcall {\nrelist_jitter 2500ms\n}", check: func(t *testing.T, c *config) {
			if c.relistDelay() != 2500*time.Millisecond {
				t.Errorf("delay %v, want 2.5s", c.relistDelay())
			}
		}},
		{name: "relist_jitter 0 turns it off", input: "rollcall {\nrelist_jitter 0\n}", check: func(t *testing.T, c *config) {
			if c.relistJitter != 0 || c.relistDelay() >= 0 {
				t.Errorf("relist_jitter %v, delay %v: want 0, and a negative delay (regwatch: none)", c.relistJitter, c.relistDelay())
			}
		}},
		{name: "relist_jitter at its bound", input: "rollcall {\nrelist_jitter 10m\n}", check: func(t *testing.T, c *config) {
			if c.relistDelay() != maxRelistJitter {
				t.Errorf("delay %v, want %v", c.relistDelay(), maxRelistJitter)
			}
		}},
		{name: "relist_jitter over its bound", input: "rollcall {\nrelist_jitter 11m\n}", wantErr: `Testfile:2 - Error during parsing: relist_jitter "11m" is not a duration from 0 to 10m0s`},
		{name: "relist_jitter negative", input: "rollcall {\n\nrelist_jitter -1s\n}", wantErr: `Testfile:3 - Error during parsing: relist_jitter "-1s" is not a duration`},
		{name: "relist_jitter without unit", input: "rollcall {\nrelist_jitter 5\n}", wantErr: `relist_jitter "5" is not a duration from 0 to 10m0s, such as 500ms or 5s`},
		{name: "relist_jitter without value", input: "rollcall {\nrelist_jitter\n}", wantErr: "Testfile:2 - Error during parsing: relist_jitter needs one duration"},
		{name: "relist_jitter with two", input: "rollcall {\nrelist_jitter 1s 2s\n}", wantErr: "relist_jitter needs one duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parse(caddy.NewTestController("dns", tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			tt.check(t, cfg)
		})
	}
}

// TestRelistJitterLoaderKey: the jitter is how a watch runs, so blocks that
// ask for different ones do not share a watch; leaving it out is asking for
// the default.
func TestRelistJitterLoaderKey(t *testing.T) {
	key := func(body string) loaderKey {
		c, err := parse(caddy.NewTestController("dns", "rollcall {\n"+body+"\n}"))
		if err != nil {
			t.Fatal(err)
		}
		return c.loaderKey()
	}
	if key("relist_jitter 1s") == key("relist_jitter 2s") {
		t.Error("blocks with relist_jitter 1s and 2s share a watch")
	}
	if key("relist_jitter 0") == key("") {
		t.Error("a block with relist_jitter 0 shares the watch of one with the default")
	}
	if relistJitter == regwatch.DefaultRelistJitter && key("relist_jitter 1s") != key("") {
		t.Error("relist_jitter 1s, the default, does not share the watch of a block without it")
	}
}

// TestRelistJitterReachesWatcher starts the loader of blocks as OnStartup
// does and reads the bound back from the watcher that runs.
func TestRelistJitterReachesWatcher(t *testing.T) {
	e := testkit.StartEtcd(t)
	for _, tt := range []struct {
		body string
		want time.Duration
	}{
		{"relist_jitter 250ms", 250 * time.Millisecond},
		{"relist_jitter 0", 0},
		{"", relistJitter},
	} {
		cfg, err := parse(caddy.NewTestController("dns", "rollcall {\nendpoint "+e.ClientURL+"\n"+tt.body+"\n}"))
		if err != nil {
			t.Fatal(err)
		}
		l, err := acquire(cfg)
		if err != nil {
			t.Fatalf("%q: acquire: %v", tt.body, err)
		}
		got := l.watcher.Config().RelistJitter
		l.release()
		if got != tt.want {
			t.Errorf("%q: the watcher's re-list jitter is %v, want %v", tt.body, got, tt.want)
		}
	}
}
