package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rollcall/rollcall/plugin/rollcall"
)

// fleet is simulated DNS readers in this process: each a rollcall.Reader,
// the plugin's own loader with its own etcd client and watch, as CoreDNS
// servers on as many hosts would follow etcd. What the readers apply, and
// when, is noted for the readers part.
type fleet struct {
	readers   []*fleetReader
	base      time.Time // the zero of every offset below
	endpoints []string
	prefix    string
	jitter    time.Duration

	recording atomic.Bool  // note every revision applied (the lag phase)
	target    atomic.Int64 // note when each reader first serves this revision

	errMu   sync.Mutex
	errFrom time.Time // count the failed reads sent from then on
	errN    int64     // how many
	errs    []string  // the first few of them
}

// maxErrSamples bounds the errors of failed reads a fleet keeps.
const maxErrSamples = 5

// fleetReader is one reader and what the fleet notes about it.
type fleetReader struct {
	r *rollcall.Reader

	mu      sync.Mutex
	applied []appliedRev // while recording: every revision applied, in order

	reachedAt atomic.Int64 // offset when it first served fleet.target; 0 not yet
}

// appliedRev is a revision a reader served from an offset on.
type appliedRev struct {
	rev int64
	at  time.Duration
}

// newFleet returns an empty fleet of readers of prefix at endpoints, with
// the re-list jitter bound jitter (negative: none).
func newFleet(endpoints []string, prefix string, jitter time.Duration) *fleet {
	return &fleet{base: time.Now(), endpoints: endpoints, prefix: prefix, jitter: jitter, errFrom: time.Now()}
}

// grow starts readers, each with its own client, until the fleet has n,
// and waits until every new one has listed (up to timeout).
func (f *fleet) grow(ctx context.Context, n int, timeout time.Duration) error {
	first := len(f.readers)
	for len(f.readers) < n {
		fr := &fleetReader{}
		r, err := rollcall.NewReader(rollcall.ReaderConfig{
			Endpoints:    f.endpoints,
			Prefix:       f.prefix,
			RelistJitter: f.jitter,
			OnApplied:    func(rev int64) { f.applied(fr, rev) },
			OnReadFailed: f.readFailed,
		})
		if err != nil {
			return err
		}
		fr.r = r
		f.readers = append(f.readers, fr)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i, fr := range f.readers[first:] {
		if err := fr.r.WaitLoaded(wctx); err != nil {
			return fmt.Errorf("reader %d of %d: %w", first+i+1, n, err)
		}
	}
	return nil
}

// applied is every reader's OnApplied: it runs on that reader's goroutine.
func (f *fleet) applied(fr *fleetReader, rev int64) {
	at := time.Since(f.base)
	if f.recording.Load() {
		fr.mu.Lock()
		fr.applied = append(fr.applied, appliedRev{rev, at})
		fr.mu.Unlock()
	}
	if t := f.target.Load(); t > 0 && rev >= t && fr.reachedAt.Load() == 0 {
		fr.reachedAt.Store(int64(at))
	}
}

// readFailed counts a failed read sent after errFrom, keeping the first
// errors.
func (f *fleet) readFailed(err error, sent time.Time) {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	if sent.Before(f.errFrom) {
		return
	}
	f.errN++
	if len(f.errs) < maxErrSamples {
		f.errs = append(f.errs, fmt.Sprintf("%v after: %v", time.Since(f.errFrom).Round(time.Millisecond), err))
	}
}

// countErrors starts counting the failed reads sent from now on,
// forgetting earlier ones; takeErrors returns how many and the first.
func (f *fleet) countErrors() {
	f.errMu.Lock()
	f.errFrom, f.errN, f.errs = time.Now(), 0, nil
	f.errMu.Unlock()
}

func (f *fleet) takeErrors() (int64, []string) {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return f.errN, f.errs
}

// Close stops every reader.
func (f *fleet) Close() {
	var wg sync.WaitGroup
	for _, fr := range f.readers {
		if fr.r != nil {
			wg.Go(fr.r.Close)
		}
	}
	wg.Wait()
}

// sum adds up g over the readers.
func (f *fleet) sum(g func(*fleetReader) int64) int64 {
	var n int64
	for _, fr := range f.readers {
		n += g(fr)
	}
	return n
}

// Lists and FailedReads are the fleet's totals so far.
func (f *fleet) Lists() int64 { return f.sum(func(fr *fleetReader) int64 { return fr.r.Lists() }) }
func (f *fleet) FailedReads() int64 {
	return f.sum(func(fr *fleetReader) int64 { return fr.r.FailedReads() })
}

// behind counts the readers serving a revision below rev.
func (f *fleet) behind(rev int64) int {
	n := 0
	for _, fr := range f.readers {
		if fr.r.Revision() < rev {
			n++
		}
	}
	return n
}

// waitCurrent waits until every reader serves rev or later, polling, and
// returns when that was; it gives up after timeout, saying how many lag.
func (f *fleet) waitCurrent(ctx context.Context, rev int64, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		n := f.behind(rev)
		if n == 0 {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%d of %d readers still short of revision %d after %v", n, len(f.readers), rev, timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// track starts noting when each reader first serves rev.
func (f *fleet) track(rev int64) {
	for _, fr := range f.readers {
		fr.reachedAt.Store(0)
	}
	f.target.Store(rev)
	// A reader already there is noted now: no apply may come for it.
	at := time.Since(f.base)
	for _, fr := range f.readers {
		if fr.r.Revision() >= rev {
			fr.reachedAt.CompareAndSwap(0, int64(at))
		}
	}
}

// reached returns when each reader first served the tracked revision, as
// offsets, for the readers that did.
func (f *fleet) reached() []time.Duration {
	var ds []time.Duration
	for _, fr := range f.readers {
		if at := fr.reachedAt.Load(); at > 0 {
			ds = append(ds, time.Duration(at))
		}
	}
	return ds
}

// record turns the notes of every revision applied on or off; on clears
// the earlier notes.
func (f *fleet) record(on bool) {
	if on {
		for _, fr := range f.readers {
			fr.mu.Lock()
			fr.applied = nil
			fr.mu.Unlock()
		}
	}
	f.recording.Store(on)
}

// lags adds to fromSent, for every write and every reader, how long after
// the write's Put was sent the reader first served the write's revision,
// and to fromResp how long after its response (0 when the reader was
// first); writes a reader never served are counted in missed.
func (f *fleet) lags(writes []timedWrite, fromSent, fromResp *Histogram) (missed int) {
	for _, fr := range f.readers {
		fr.mu.Lock()
		applied := fr.applied
		fr.mu.Unlock()
		j := 0
		for _, w := range writes {
			for j < len(applied) && applied[j].rev < w.rev {
				j++
			}
			if j == len(applied) {
				missed++
				continue
			}
			fromSent.Add(applied[j].at - w.sent)
			fromResp.Add(max(applied[j].at-w.at, 0))
		}
	}
	return missed
}

// liveHeap is this process's heap after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// memAvailable is the memory the kernel says is available for new work
// (MemAvailable in /proc/meminfo).
func memAvailable() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemAvailable:"); ok {
			return parseKB(v)
		}
	}
	return 0, fmt.Errorf("no MemAvailable in /proc/meminfo")
}

// memoryLimit bounds this process's memory (runtime/debug.SetMemoryLimit)
// to what it uses now plus four fifths of what is available, until the
// returned function restores the old limit: a large fleet's heap then
// makes the collector work harder instead of taking the machine's last
// memory. The fleets are sized to fit well below it (readersRun.fits).
func memoryLimit() (restore func()) {
	avail, err := memAvailable()
	if err != nil {
		return func() {}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	old := debug.SetMemoryLimit(int64(ms.Sys-ms.HeapReleased) + avail*4/5)
	return func() { debug.SetMemoryLimit(old) }
}

// quietPlugin drops the plugin's log lines (a line per reader per change of
// state would drown the benchmark's own) until the returned function runs.
// CoreDNS's log and this program's slog share the log package's output, so
// it filters rather than discards.
func quietPlugin() (restore func()) {
	old := log.Writer()
	log.SetOutput(&dropLines{w: old, marker: []byte("plugin/rollcall: ")})
	return func() { log.SetOutput(old) }
}

// dropLines passes on the writes that do not contain marker (the log
// package writes one line per call).
type dropLines struct {
	w      io.Writer
	marker []byte
}

func (d *dropLines) Write(p []byte) (int, error) {
	if bytes.Contains(p, d.marker) {
		return len(p), nil
	}
	return d.w.Write(p)
}
