package load

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestHistogramPercentiles holds the summary of known samples against their
// exact nearest-rank percentiles: equal below 256 µs, within 0.4% above.
func TestHistogramPercentiles(t *testing.T) {
	for _, tc := range []struct {
		name             string
		unit             time.Duration
		n                int     // samples 1..n units, shuffled
		p50, p90, p99    float64 // exact, in ms
		max, within      float64
		wantExactSamples bool
	}{
		{"microseconds", time.Microsecond, 200, 0.100, 0.180, 0.198, 0.200, 0, true},
		{"milliseconds", time.Millisecond, 1000, 500, 900, 990, 1000, 0.004, false},
		{"seconds", time.Second, 100, 50_000, 90_000, 99_000, 100_000, 0.004, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h histogram
			for _, i := range rand.Perm(tc.n) {
				h.record(time.Duration(i+1) * tc.unit)
			}
			got := h.summary()
			if got.Count != int64(tc.n) || got.Max != tc.max {
				t.Errorf("count %d, max %v; want %d, %v", got.Count, got.Max, tc.n, tc.max)
			}
			for _, q := range []struct {
				name      string
				got, want float64
			}{{"p50", got.P50, tc.p50}, {"p90", got.P90, tc.p90}, {"p99", got.P99, tc.p99}} {
				if off := math.Abs(q.got-q.want) / q.want; off > tc.within {
					t.Errorf("%s = %v ms, want %v ms (within %.1f%%)", q.name, q.got, q.want, tc.within*100)
				}
			}
		})
	}

	var empty histogram
	if got := empty.summary(); got != (Latency{}) {
		t.Errorf("empty summary = %+v, want zeros", got)
	}
	var one histogram
	one.record(1234567 * time.Microsecond)
	if got := one.summary(); got.P50 != 1234.567 || got.P99 != 1234.567 || got.Max != 1234.567 {
		t.Errorf("a single sample's summary = %+v; every percentile is that sample, 1234.567 ms", got)
	}
}

// TestBuckets: every value falls in the bucket whose bounds hold it, the
// buckets tile the numbers with no gap, and none is wider than 1/128 of its
// lower bound.
func TestBuckets(t *testing.T) {
	prevHi := int64(-1)
	for i := range bucketOf(int64(time.Hour / time.Microsecond)) {
		lo, hi := bucketBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d; the one before ended at %d", i, lo, prevHi)
		}
		if lo >= 256 && float64(hi-lo+1)/float64(lo) > 1.0/128 {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/128 of its start", i, lo, hi)
		}
		for _, v := range []int64{lo, (lo + hi) / 2, hi} {
			if b := bucketOf(v); b != i {
				t.Fatalf("bucketOf(%d) = %d, want %d ([%d, %d])", v, b, i, lo, hi)
			}
		}
		prevHi = hi
	}
}
