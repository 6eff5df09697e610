package identity

import (
	"testing"
	"time"
)

func TestIPThrottle(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	th := newIPThrottle(3, 10*time.Minute, 8*time.Second)
	steps := []struct {
		name    string
		at      time.Duration
		fail    bool
		ip      string
		blocked time.Duration // wait expected before this step's failure
	}{
		{"1st", 0, true, "a", 0},
		{"2nd", time.Second, true, "a", 0},
		{"3rd reaches threshold", 2 * time.Second, true, "a", 0},
		{"4th blocks 1s", 3 * time.Second, true, "a", 0},
		{"still blocked", 3*time.Second + 500*time.Millisecond, false, "a", 500 * time.Millisecond},
		{"other ip free", 3 * time.Second, false, "b", 0},
		{"5th blocks 2s", 4 * time.Second, true, "a", 0},
		{"blocked 2s", 5 * time.Second, false, "a", time.Second},
		{"6th 4s", 6 * time.Second, true, "a", 0},
		{"7th 8s", 10 * time.Second, true, "a", 0},
		{"8th capped at 8s", 18 * time.Second, true, "a", 0},
		{"capped", 19 * time.Second, false, "a", 7 * time.Second},
		{"window over and unblocked: fresh count", 11 * time.Minute, true, "a", 0},
		{"fresh", 11*time.Minute + time.Second, false, "a", 0},
		{"empty ip never tracked", 0, true, "", 0},
	}
	for _, st := range steps {
		now := t0.Add(st.at)
		if got := th.blocked(st.ip, now); got != st.blocked {
			t.Fatalf("%s: blocked = %v, want %v", st.name, got, st.blocked)
		}
		if st.fail {
			th.fail(st.ip, now)
		}
	}
}

func TestIPThrottleBounded(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	th := newIPThrottle(3, time.Minute, time.Minute)
	th.limit = 10
	for i := range 25 {
		th.fail(string(rune('a'+i)), t0)
	}
	if len(th.ips) > 10 {
		t.Fatalf("tracking %d IPs, limit 10", len(th.ips))
	}
}
