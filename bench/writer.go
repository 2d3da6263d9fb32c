package main

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rollcall/rollcall/registry"
)

// timedWrite is one write of the load: its revision, when its Put was sent
// and when its response came, as offsets from the fleet's zero.
type timedWrite struct {
	rev      int64
	sent, at time.Duration
}

// writeLoad is what writeAtRate did.
type writeLoad struct {
	writes  []timedWrite // in revision order
	asked   int          // writes the schedule called for
	errs    int
	latency *Histogram // of the Puts that succeeded
	took    time.Duration
}

// writesInFlight bounds the writes of the load under way at once: a
// registry's writers are many agents, not one client waiting for each
// answer, so a write's commit time (several fsyncs on this shared disk)
// must not cap the rate.
const writesInFlight = 8

// writeAtRate changes instance records of d under keys at rate writes per
// second for dur, the load the readers follow. The writes go out on a
// schedule, at most writesInFlight at once: when etcd is too slow for that,
// the schedule slips and the rate achieved falls short of the rate asked.
// Each write moves one instance's port between two values, so every write
// is a real change that readers rebuild a service for. Offsets are from
// base.
func writeAtRate(ctx context.Context, cli *clientv3.Client, d Dataset, keys registry.Keys, base time.Time, rate int, dur time.Duration) (writeLoad, error) {
	wl := writeLoad{latency: NewHistogram()}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		jobs = make(chan int)
	)
	for range writesInFlight {
		wg.Go(func() {
			for i := range jobs {
				w, err := writeOne(ctx, cli, d, keys, base, i)
				mu.Lock()
				if err != nil {
					wl.errs++
				} else {
					wl.writes = append(wl.writes, w)
					wl.latency.Add(w.at - w.sent)
				}
				mu.Unlock()
			}
		})
	}
	every := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; time.Duration(i)*every < dur && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
			time.Sleep(d)
		}
		select {
		case jobs <- i:
			wl.asked++
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	wl.took = time.Since(start)
	slices.SortFunc(wl.writes, func(a, b timedWrite) int { return cmp.Compare(a.rev, b.rev) })
	return wl, ctx.Err()
}

// writeOne is write i of the load.
func writeOne(ctx context.Context, cli *clientv3.Client, d Dataset, keys registry.Keys, base time.Time, i int) (timedWrite, error) {
	s, j := i%d.Services, (i/d.Services)%d.PerService
	in := d.RollcallInstance(s, j)
	in.Ports[0].Port = 8080 + 1 - (i/(d.Services*d.PerService))%2
	v, err := registry.EncodeInstance(in)
	if err != nil {
		return timedWrite{}, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sent := time.Since(base)
	resp, err := cli.Put(pctx, keys.Instance(in.Host, in.Service), string(v))
	if err != nil {
		return timedWrite{}, err
	}
	return timedWrite{rev: resp.Header.Revision, sent: sent, at: time.Since(base)}, nil
}

// markerWrite writes one key under keys' prefix with a fresh client of
// endpoints, retrying for up to timeout while etcd comes back, and returns
// its revision: the revision every reader must serve to be current.
func markerWrite(ctx context.Context, endpoints []string, keys registry.Keys, timeout time.Duration) (int64, error) {
	cli, err := newBenchClient(endpoints)
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	deadline := time.Now().Add(timeout)
	// A host record, so that it changes no service's answers.
	h := &registry.Host{Name: "marker", Addrs: registry.Addrs{registry.PublicNetwork: {netip.MustParseAddr("198.51.100.1")}}}
	v, err := registry.EncodeHost(h)
	if err != nil {
		return 0, err
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := cli.Put(pctx, keys.Host(h.Name), string(v))
		cancel()
		if err == nil {
			return resp.Header.Revision, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("marker write: etcd not writable after %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
