package election

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
)

// Leader is the master of a service as etcd shows it. The zero Leader means
// there is none (or none that can be named: see leaderOf).
type Leader struct {
	Host string // the candidate's host name
	Term int64  // the leader key's create revision
	Key  string // the leader key
}

// candidate is one key of an election, as leaderOf sees it.
type candidate struct {
	key       string
	createRev int64
	value     []byte
}

// leaderOf returns the leader among an election's keys: the key with the
// lowest create revision, as concurrency.Election decides. When that key's
// value is not a valid host name the leader cannot be named, and the result
// is the zero Leader with an error saying why; a later key is not promoted in
// its place, because that candidate is not master.
func leaderOf(cands []candidate) (Leader, error) {
	var first *candidate
	for i := range cands {
		if first == nil || cands[i].createRev < first.createRev {
			first = &cands[i]
		}
	}
	if first == nil {
		return Leader{}, nil
	}
	host, err := registry.DecodeCandidate(first.value)
	if err != nil {
		return Leader{}, fmt.Errorf("leader key %s: %w", first.key, err)
	}
	return Leader{Host: host, Term: first.createRev, Key: first.key}, nil
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
	var cands []candidate
	for _, kv := range r.Kvs {
		cands = append(cands, candidate{key: string(kv.Key), createRev: kv.CreateRevision, value: kv.Value})
	}
	l, err := leaderOf(cands)
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
// It retries through etcd outages (logging once per outage) and closes the
// channel only when ctx ends.
func Observe(ctx context.Context, cli *clientv3.Client, keys registry.Keys, service string, log *slog.Logger) (<-chan Leader, error) {
	if err := registry.CheckName("service", service); err != nil {
		return nil, fmt.Errorf("observe: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	ch := make(chan Leader)
	o := &observer{cli: cli, prefix: keys.Election(service) + "/", out: ch, log: log.With("service", service)}
	go o.run(ctx)
	return ch, nil
}

type observer struct {
	cli    *clientv3.Client
	prefix string
	out    chan<- Leader
	log    *slog.Logger

	cands   map[string]candidate
	last    Leader
	sent    bool
	lastBad string // the malformed-leader error last logged
	failing bool
}

func (o *observer) run(ctx context.Context) {
	defer close(o.out)
	for ctx.Err() == nil {
		rev, ok := o.list(ctx)
		if !ok {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if !o.emit(ctx) {
			return
		}
		// Follow from the listed revision; after a compaction or a lost
		// watch, list again (that replaces the whole state, so deletes missed
		// meanwhile count).
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range o.cli.Watch(wctx, o.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				k := string(ev.Kv.Key)
				if ev.Type == mvccpb.DELETE {
					delete(o.cands, k)
				} else {
					o.cands[k] = candidate{key: k, createRev: ev.Kv.CreateRevision, value: ev.Kv.Value}
				}
			}
			if !o.emit(ctx) {
				cancel()
				return
			}
		}
		cancel()
	}
}

// list reads the whole election and returns its revision.
func (o *observer) list(ctx context.Context) (int64, bool) {
	r, err := o.cli.Get(ctx, o.prefix, clientv3.WithPrefix())
	if err != nil {
		if !o.failing && ctx.Err() == nil {
			o.log.Warn("observe election: cannot read etcd, retrying", "err", err)
			o.failing = true
		}
		return 0, false
	}
	if o.failing {
		o.log.Info("observe election: etcd readable again")
		o.failing = false
	}
	o.cands = make(map[string]candidate, len(r.Kvs))
	for _, kv := range r.Kvs {
		o.cands[string(kv.Key)] = candidate{key: string(kv.Key), createRev: kv.CreateRevision, value: kv.Value}
	}
	return r.Header.Revision, true
}

// emit sends the leader if it changed; false when ctx ended.
func (o *observer) emit(ctx context.Context) bool {
	cands := make([]candidate, 0, len(o.cands))
	for _, c := range o.cands {
		cands = append(cands, c)
	}
	l, err := leaderOf(cands)
	bad := ""
	if err != nil {
		bad = err.Error()
		if bad != o.lastBad {
			o.log.Warn("observe election: cannot name the leader, reporting none", "err", err)
		}
	}
	o.lastBad = bad
	if o.sent && l == o.last {
		return true
	}
	select {
	case o.out <- l:
		o.last, o.sent = l, true
		return true
	case <-ctx.Done():
		return false
	}
}
