package registry

import (
	"errors"
	"slices"
	"testing"
)

func TestLeader(t *testing.T) {
	c := func(key string, rev int64, value string) Candidate { return NewCandidate(key, rev, []byte(value)) }
	for _, tc := range []struct {
		name    string
		cands   []Candidate
		wantKey string // "" means no leader
		wantBad bool   // the leader's value is not a host name
	}{
		{name: "none"},
		{name: "one", cands: []Candidate{c("/p/7", 7, "h1")}, wantKey: "/p/7"},
		{name: "lowest create revision wins, whatever the order", cands: []Candidate{
			c("/p/9", 9, "h2"), c("/p/5", 5, "h1"), c("/p/12", 12, "h3"),
		}, wantKey: "/p/5"},
		{name: "malformed leader is not replaced by the next", cands: []Candidate{
			c("/p/9", 9, "h2"), c("/p/5", 5, "Not A Host"),
		}, wantKey: "/p/5", wantBad: true},
		{name: "malformed follower does not matter", cands: []Candidate{
			c("/p/5", 5, "h1"), c("/p/9", 9, ""),
		}, wantKey: "/p/5"},
		{name: "same revision: the first wins", cands: []Candidate{
			c("/p/b", 5, "h2"), c("/p/a", 5, "h1"),
		}, wantKey: "/p/b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lead, ok := Leader(slices.Values(tc.cands))
			if ok != (tc.wantKey != "") || lead.Key != tc.wantKey {
				t.Fatalf("Leader = %+v, %v; want key %q", lead, ok, tc.wantKey)
			}
			if !ok {
				return
			}
			if (lead.Err != nil) != tc.wantBad || (lead.Host == "") != tc.wantBad {
				t.Fatalf("leader %+v: want malformed %v", lead, tc.wantBad)
			}
			for _, x := range tc.cands {
				if x.Key == lead.Key && x.CreateRevision != lead.CreateRevision {
					t.Fatalf("term %d, want the key's create revision %d", lead.CreateRevision, x.CreateRevision)
				}
			}
		})
	}
}

func TestNewCandidate(t *testing.T) {
	if c := NewCandidate("/p/1", 3, []byte("h1")); c.Host != "h1" || c.Err != nil || c.CreateRevision != 3 || c.Key != "/p/1" {
		t.Fatalf("good candidate: %+v", c)
	}
	c := NewCandidate("/p/1", 3, []byte("H1"))
	if c.Host != "" || !errors.Is(c.Err, ErrBadRecord) || c.CreateRevision != 3 {
		t.Fatalf("bad candidate: %+v, want Host empty, Err wrapping ErrBadRecord, its place kept", c)
	}
	if r, ok := ReasonOf(c.Err); !ok || r != ReasonCandidate {
		t.Fatalf("bad candidate reason %q, %v; want %q", r, ok, ReasonCandidate)
	}
}
