package main

import (
	"math"
	"sort"
	"time"
)

// Histogram counts latencies at three significant digits of a microsecond
// count (1µs steps below 1ms, 10µs below 10ms, ...): precise enough for
// percentiles, and small however many samples a run has.
type Histogram struct {
	counts map[int64]int64 // bucket (µs, rounded) -> count
	n      int64
	sum    time.Duration
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{counts: map[int64]int64{}} }

// bucket rounds a duration down to three significant digits of µs.
func bucket(d time.Duration) int64 {
	us := int64(d / time.Microsecond)
	if us < 1000 {
		return us
	}
	scale := int64(1)
	for us/scale >= 1000 {
		scale *= 10
	}
	return us / scale * scale
}

// Add records one sample.
func (h *Histogram) Add(d time.Duration) {
	h.counts[bucket(d)]++
	h.n++
	h.sum += d
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	for k, v := range o.counts {
		h.counts[k] += v
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of samples.
func (h *Histogram) Count() int64 { return h.n }

// Mean is the average sample.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Percentile returns the smallest bucket value at or below which a fraction
// p (0-1) of the samples lie; 0 for an empty (or nil) histogram.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h == nil || h.n == 0 {
		return 0
	}
	keys := make([]int64, 0, len(h.counts))
	for k := range h.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return keys[a] < keys[b] })
	rank := int64(math.Ceil(p * float64(h.n)))
	rank = max(rank, 1)
	var seen int64
	for _, k := range keys {
		seen += h.counts[k]
		if seen >= rank {
			return time.Duration(k) * time.Microsecond
		}
	}
	return time.Duration(keys[len(keys)-1]) * time.Microsecond
}

// median returns the median of xs (the mean of the middle two for an even
// count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// medianDur is median for durations.
func medianDur(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs))
}

// percentileOf returns the p-quantile (nearest rank) of ds.
func percentileOf(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	rank := int(math.Ceil(p * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}
