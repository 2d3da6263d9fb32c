package health

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/rollcall/rollcall/registry"
)

// notYet is the reason of a check that has not failed since it was set:
// it starts critical, and no run has passed rise times yet.
const notYet = "no check has passed yet"

// riseFall is a check's state after rise and fall: what its results in a
// row make of it. It holds no clock and no probe, and is tested alone.
type riseFall struct {
	state       registry.State
	reason      string // when critical: why, in the check's words (without the check's name)
	last        *Result
	passes      int // non-critical results in a row
	failures    int // critical results in a row
	transitions int
	changed     time.Time
	// failed says a critical result has set reason since the check went
	// critical. Later critical results keep it: a reason goes to etcd, and
	// a failing check's changing output (a timestamp, a duration) must not
	// make a write every run.
	failed bool
}

func newRiseFall(now time.Time) riseFall {
	return riseFall{state: registry.StateCritical, reason: notYet, changed: now}
}

// apply adds one result and reports whether the state or the reason
// changed. A critical check rises to its latest result's state after rise
// non-critical results in a row; a check that is up follows its results
// between passing and warning, and falls to critical after fall critical
// results in a row.
func (c *riseFall) apply(spec Spec, r Result) (changed bool) {
	c.last = &r
	before, beforeReason := c.state, c.reason
	if r.State == registry.StateCritical {
		c.passes = 0
		c.failures++
		switch {
		case c.state != registry.StateCritical && c.failures >= spec.Fall:
			c.state, c.reason, c.failed = registry.StateCritical, failReason(r), true
		case c.state == registry.StateCritical && !c.failed:
			// The first failure of a check that never passed says why
			// better than "no check has passed yet".
			c.reason, c.failed = failReason(r), true
		}
	} else {
		c.failures = 0
		c.passes++
		if c.state != registry.StateCritical || c.passes >= spec.Rise {
			c.state, c.reason, c.failed = r.State, "", false
		}
	}
	if c.state != before {
		c.transitions++
		c.changed = r.At
	}
	return c.state != before || c.reason != beforeReason
}

// failReason is the reason a critical result gives: its output, or that
// it said nothing.
func failReason(r Result) string {
	if r.Output == "" {
		return "failed without output"
	}
	return r.Output
}

// check is one check of one service while it is set. spec and service do
// not change; the other fields are guarded by the Monitor's mu.
type check struct {
	spec    Spec
	service string
	source  string // spec.Source, updated by a Set that keeps the check
	rf      riseFall
	removed bool               // no longer set: a result still coming is dropped
	stop    context.CancelFunc // ends the loop; nil while it is not running
}

// loop runs one check on its schedule until ctx ends: the first run at a
// random point of the first interval, then every interval +/- Jitter. A
// run waits for a place under the concurrency cap; its timeout starts
// once it has one. The next run is due an interval after this one was
// due, so a run never overlaps the one before (runs missed meanwhile are
// skipped and counted).
func (m *Monitor) loop(ctx context.Context, c *check) {
	due := time.Now().Add(firstDelay(c.spec.Interval, rand.Float64()))
	timer := time.NewTimer(time.Until(due))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		select {
		case m.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		m.metrics.running(1)
		r := run(ctx, c.spec)
		m.metrics.running(-1)
		<-m.sem
		if ctx.Err() != nil {
			// Cut short by a Remove or the end of Run: not the service's fault.
			return
		}
		m.record(c, r)
		next, skipped := nextDue(due, time.Now(), c.spec.Interval, rand.Float64)
		if skipped > 0 {
			m.metrics.skipped(c.service, skipped)
			m.log.Debug("health check runs skipped: the one before was still going", "service", c.service, "check", c.spec.String(), "skipped", skipped)
		}
		due = next
		timer.Reset(time.Until(due))
	}
}
