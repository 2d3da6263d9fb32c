package election

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/internal/regwatch"
	"github.com/rollcall/rollcall/registry"
)

// Leader is the master of a service as etcd shows it. The zero Leader means
// there is none (or none that can be named: see leaderOf).
type Leader struct {
	Host string // the candidate's host name
	Term int64  // the leader key's create revision
	Key  string // the leader key
}

// leaderOf returns the leader among an election's keys (registry.Leader: the
// lowest create revision, as concurrency.Election decides). When that key's
// value is not a valid host name the leader cannot be named, and the result
// is the zero Leader with an error saying why; a later key is not promoted in
// its place, because that candidate is not master.
func leaderOf(cands iter.Seq[registry.Candidate]) (Leader, error) {
	lead, ok := registry.Leader(cands)
	if !ok {
		return Leader{}, nil
	}
	if lead.Err != nil {
		return Leader{}, fmt.Errorf("leader key %s: %w", lead.Key, lead.Err)
	}
	return Leader{Host: lead.Host, Term: lead.CreateRevision, Key: lead.Key}, nil
}

func candidateOf(kv *mvccpb.KeyValue) registry.Candidate {
	return registry.NewCandidate(string(kv.Key), kv.CreateRevision, kv.Value)
}

// CurrentLeader returns the master of service now, or an error wrapping
// ErrNoLeader when there is none.
func CurrentLeader(ctx context.Context, cli *clientv3.Client, keys registry.Keys, service string) (Leader, error) {
	if err := registry.CheckName("service", service); err != nil {
		return Leader{}, fmt.Errorf("leader: %w", err)
	}
	r, err := cli.Get(ctx, keys.Election(service)+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return Leader{}, fmt.Errorf("leader of %s: %w", service, err)
	}
	var cands []registry.Candidate
	for _, kv := range r.Kvs {
		cands = append(cands, candidateOf(kv))
	}
	l, err := leaderOf(slices.Values(cands))
	if err != nil {
		return Leader{}, fmt.Errorf("leader of %s: %w", service, err)
	}
	if l == (Leader{}) {
		return Leader{}, fmt.Errorf("%s: %w", service, ErrNoLeader)
	}
	return l, nil
}

// Observe returns a channel that receives the master of service first as it
// is now, then every time it changes (the zero Leader when there is none), in
// order and without gaps: it waits for the reader rather than drop a change.
// It follows the election with the registry's list-then-watch loop
// (internal/regwatch): a lost watch resumes where it ended, a compaction
// makes it list again, and etcd outages are retried with a jittered backoff
// (logged once per outage). It closes the channel only when ctx ends.
func Observe(ctx context.Context, cli *clientv3.Client, keys registry.Keys, service string, log *slog.Logger) (<-chan Leader, error) {
	if err := registry.CheckName("service", service); err != nil {
		return nil, fmt.Errorf("observe: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	ch := make(chan Leader)
	o := &observer{ctx: ctx, out: ch, log: log.With("service", service), cands: map[string]registry.Candidate{}}
	w, err := regwatch.New(cli, regwatch.Config{Prefix: keys.Election(service) + "/"}, regwatch.Callbacks{
		OnList:   o.list,
		OnEvents: o.apply,
		OnStatus: o.status,
	})
	if err != nil {
		return nil, fmt.Errorf("observe %s: %w", service, err)
	}
	go func() {
		defer close(ch)
		_ = w.Run(ctx) // returns when ctx ends
	}()
	return ch, nil
}

// observer keeps an election's candidates as the Watcher hands them over and
// sends the leader whenever it changes. Its methods run on the Watcher's
// goroutine (status may also come from its monitor, never at the same time).
type observer struct {
	ctx context.Context
	out chan<- Leader
	log *slog.Logger

	cands   map[string]registry.Candidate
	last    Leader
	sent    bool
	lastBad string // the malformed-leader error last logged
	failing bool
}

// list replaces the candidates with a list of the whole election (after a
// compaction this applies the deletes missed meanwhile).
func (o *observer) list(kvs []*mvccpb.KeyValue, _ int64) {
	o.cands = make(map[string]registry.Candidate, len(kvs))
	for _, kv := range kvs {
		o.cands[string(kv.Key)] = candidateOf(kv)
	}
	o.emit()
}

func (o *observer) apply(evs []*clientv3.Event, _ int64) {
	for _, ev := range evs {
		k := string(ev.Kv.Key)
		if ev.Type == mvccpb.DELETE {
			delete(o.cands, k)
		} else {
			o.cands[k] = candidateOf(ev.Kv)
		}
	}
	o.emit()
}

// status logs an outage once, and its end. Only a failed read counts:
// silence alone may be a reader that has not taken the last leader yet
// (emit waits for it, and the Watcher with it).
func (o *observer) status(s regwatch.Status, why error) {
	switch {
	case s == regwatch.Unreachable && !o.failing && why != nil && !errors.Is(why, regwatch.ErrSilent):
		o.log.Warn("observe election: cannot read etcd, retrying", "err", why)
		o.failing = true
	case s != regwatch.Unreachable && o.failing:
		o.log.Info("observe election: etcd readable again")
		o.failing = false
	}
}

// emit sends the leader if it changed, waiting for the reader; it gives up
// when ctx ends (the Watcher then stops too).
func (o *observer) emit() {
	l, err := leaderOf(maps.Values(o.cands))
	bad := ""
	if err != nil {
		bad = err.Error()
		if bad != o.lastBad {
			o.log.Warn("observe election: cannot name the leader, reporting none", "err", err)
		}
	}
	o.lastBad = bad
	if o.sent && l == o.last {
		return
	}
	select {
	case o.out <- l:
		o.last, o.sent = l, true
	case <-o.ctx.Done():
	}
}
