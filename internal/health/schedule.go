package health

import "time"

// Jitter is the spread of every run after the first: an interval +/- 5 %,
// so that checks set together drift apart instead of probing in step.
const Jitter = 0.05

// firstDelay is the wait before a check's first run, for r uniform in
// [0, 1): a uniform point of [0, interval). An agent starting with many
// checks, or many agents restarted together, spreads its first probes
// over the whole interval instead of sending them all at once.
func firstDelay(interval time.Duration, r float64) time.Duration {
	return clampBelow(time.Duration(float64(interval)*r), interval)
}

// nextDelay is the wait from one run to the next, for r uniform in [0, 1):
// uniform in [interval*(1-Jitter), interval*(1+Jitter)).
func nextDelay(interval time.Duration, r float64) time.Duration {
	return time.Duration(float64(interval) * (1 - Jitter + 2*Jitter*r))
}

// nextDue returns when the run after the one due at due is due, seen at
// now, with rnd giving uniform numbers in [0, 1). A run is measured from
// when the one before was due, not from when it ended, so that slow
// answers do not stretch the interval. If that time has passed already
// (the run waited long for the concurrency cap, or the machine was
// suspended) the runs missed are skipped, not made up in a burst: skipped
// says how many, and the next run is due one interval after now.
func nextDue(due, now time.Time, interval time.Duration, rnd func() float64) (next time.Time, skipped int) {
	next = due.Add(nextDelay(interval, rnd()))
	if !next.After(now) {
		// Count what was missed by whole intervals, then start afresh.
		skipped = int(now.Sub(next)/interval) + 1
		next = now.Add(nextDelay(interval, rnd()))
	}
	return next, skipped
}

func clampBelow(d, limit time.Duration) time.Duration {
	if d >= limit {
		return limit - 1
	}
	if d < 0 {
		return 0
	}
	return d
}
