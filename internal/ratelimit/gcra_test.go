package ratelimit

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// step is one request in a scripted sequence against a single state.
type step struct {
	at        time.Duration // since t0
	n         int
	allowed   bool
	remaining int
	reset     time.Duration
	retry     time.Duration
}

func runSteps(t *testing.T, l Limit, steps []step) {
	t.Helper()
	var tat time.Time
	for i, s := range steps {
		n := s.n
		if n == 0 {
			n = 1
		}
		r, next, err := Decide(t0.Add(s.at), tat, l, n)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if r.Allowed != s.allowed || r.Remaining != s.remaining || r.ResetAfter != s.reset || r.RetryAfter != s.retry {
			t.Fatalf("step %d at %v: got allowed=%v remaining=%d reset=%v retry=%v, want %v %d %v %v",
				i, s.at, r.Allowed, r.Remaining, r.ResetAfter, r.RetryAfter, s.allowed, s.remaining, s.reset, s.retry)
		}
		if !r.Allowed && !next.Equal(tat) {
			t.Fatalf("step %d: rejected request moved TAT from %v to %v", i, tat, next)
		}
		tat = next
	}
}

func TestDecideSequences(t *testing.T) {
	sec := time.Second
	tests := []struct {
		name  string
		limit Limit
		steps []step
	}{
		{"burst of 3 then rejected then one per interval", Limit{3, 3 * sec, 3}, []step{
			{0, 1, true, 2, 1 * sec, 0},
			{0, 1, true, 1, 2 * sec, 0},
			{0, 1, true, 0, 3 * sec, 0},
			{0, 1, false, 0, 3 * sec, 1 * sec},
			{999 * time.Millisecond, 1, false, 0, 2001 * time.Millisecond, time.Millisecond},
			{1 * sec, 1, true, 0, 3 * sec, 0}, // window edge: exactly one interval later
			{1 * sec, 1, false, 0, 3 * sec, 1 * sec},
			{10 * sec, 1, true, 2, 1 * sec, 0}, // idle: back to full
		}},
		{"burst smaller than count", Limit{60, time.Minute, 2}, []step{
			{0, 1, true, 1, 1 * sec, 0},
			{0, 1, true, 0, 2 * sec, 0},
			{0, 1, false, 0, 2 * sec, 1 * sec},
			{1500 * time.Millisecond, 1, true, 0, 1500 * time.Millisecond, 0},
			{2 * sec, 1, true, 0, 2 * sec, 0},
			{2500 * time.Millisecond, 1, false, 0, 1500 * time.Millisecond, 500 * time.Millisecond},
		}},
		{"cost above remaining is rejected and charges nothing", Limit{5, 5 * sec, 5}, []step{
			{0, 3, true, 2, 3 * sec, 0},
			{0, 3, false, 2, 3 * sec, 1 * sec},
			{0, 2, true, 0, 5 * sec, 0},
		}},
		{"rejections do not extend the wait", Limit{1, 10 * sec, 1}, []step{
			{0, 1, true, 0, 10 * sec, 0},
			{1 * sec, 1, false, 0, 9 * sec, 9 * sec},
			{2 * sec, 1, false, 0, 8 * sec, 8 * sec},
			{9 * sec, 1, false, 0, 1 * sec, 1 * sec},
			{10 * sec, 1, true, 0, 10 * sec, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runSteps(t, tt.limit, tt.steps) })
	}
}

// TestDecideExactCount: N per W with burst N admits exactly N of many
// requests made at one instant, Remaining counts down to 0 on the last
// admitted one, and never goes up while time stands still.
func TestDecideExactCount(t *testing.T) {
	for _, s := range []string{"60/min", "100/minute", "5/s", "1000/hour", "7/min", "3/10s"} {
		l, err := ParseLimit(s)
		if err != nil {
			t.Fatal(err)
		}
		var tat time.Time
		allowed, last := 0, l.Count
		for i := 0; i < 3*l.Count; i++ {
			r, next, err := Decide(t0, tat, l, 1)
			if err != nil {
				t.Fatal(err)
			}
			if r.Remaining > last {
				t.Fatalf("%s: remaining went up from %d to %d", s, last, r.Remaining)
			}
			last = r.Remaining
			if r.Allowed {
				allowed++
				if r.Remaining != l.Count-allowed {
					t.Fatalf("%s: admitted #%d remaining %d", s, allowed, r.Remaining)
				}
			} else if r.RetryAfter <= 0 || r.Remaining != 0 {
				t.Fatalf("%s: rejection %+v", s, r)
			}
			tat = next
		}
		if allowed != l.Count {
			t.Fatalf("%s: allowed %d", s, allowed)
		}
	}
}

// TestDecideSustainedRate: over any span, at most B + floor(d/T) requests.
func TestDecideSustainedRate(t *testing.T) {
	l := Limit{Count: 10, Period: 10 * time.Second, Burst: 4}
	var tat time.Time
	allowed := 0
	for ms := 0; ms <= 60_000; ms += 50 { // a request every 50 ms for 60 s
		r, next, _ := Decide(t0.Add(time.Duration(ms)*time.Millisecond), tat, l, 1)
		if r.Allowed {
			allowed++
		}
		tat = next
	}
	if want := 4 + 60; allowed != want {
		t.Fatalf("allowed %d, want %d", allowed, want)
	}
}

func TestDecideErrors(t *testing.T) {
	l := Limit{Count: 5, Period: time.Second}
	if _, _, err := Decide(t0, time.Time{}, l, 0); !errors.Is(err, ErrInvalidCost) {
		t.Fatalf("cost 0: %v", err)
	}
	if _, _, err := Decide(t0, time.Time{}, l, 6); !errors.Is(err, ErrInvalidCost) {
		t.Fatalf("cost above burst: %v", err)
	}
	if _, _, err := Decide(t0, time.Time{}, Limit{}, 1); !errors.Is(err, ErrInvalidLimit) {
		t.Fatalf("zero limit: %v", err)
	}
}

// TestDecideShrunkLimit: state written under a larger limit never yields a
// negative remaining.
func TestDecideShrunkLimit(t *testing.T) {
	big := Limit{Count: 100, Period: time.Minute}
	var tat time.Time
	for range 100 {
		_, tat, _ = Decide(t0, tat, big, 1)
	}
	r, _, _ := Decide(t0, tat, Limit{Count: 10, Period: time.Minute}, 1)
	if r.Allowed || r.Remaining != 0 {
		t.Fatalf("%+v", r)
	}
}
