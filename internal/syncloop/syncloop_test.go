package syncloop

import (
	"testing"
	"time"
)

// TestBackoffGrowsWithJitterAndIsBounded: the wait doubles with each
// failure in a row up to the bound, never leaves the upper half of its
// step, and differs from draw to draw, so that hosts that failed together
// come back apart.
func TestBackoffGrowsWithJitterAndIsBounded(t *testing.T) {
	const most = 5 * time.Minute
	for n := 1; n <= 40; n++ {
		step := most
		if n < 32 {
			step = min(MinBackoff<<(n-1), most)
		}
		seen := map[time.Duration]bool{}
		for range 200 {
			d := Backoff(n, most)
			if d < step/2 || d > step {
				t.Fatalf("failure %d: waited %v, want within [%v, %v]", n, d, step/2, step)
			}
			seen[d] = true
		}
		if len(seen) < 100 {
			t.Errorf("failure %d: %d different waits in 200 draws; want jitter", n, len(seen))
		}
	}
	if d := Backoff(1, most); d > MinBackoff {
		t.Errorf("first wait %v, want at most %v", d, MinBackoff)
	}
	if d := Backoff(8, most); d < 64*time.Second {
		t.Errorf("eighth wait %v, want it grown to at least 64s", d)
	}
	if d := Backoff(1000, most); d > most {
		t.Errorf("wait %v after 1000 failures, over the bound %v", d, most)
	}
}
