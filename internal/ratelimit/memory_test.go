package ratelimit_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/ratelimit"
	"github.com/rampart-security/rampart/internal/ratelimit/ratelimittest"
)

// clock is a manual clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMemoryContract(t *testing.T) {
	ratelimittest.Contract(t, func(t *testing.T) ratelimit.Limiter {
		return ratelimit.NewMemory(ratelimit.MemoryOptions{Now: newClock().Now})
	})
}

func TestMemoryWindowEdges(t *testing.T) {
	clk := newClock()
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{Now: clk.Now})
	l := ratelimit.Limit{Count: 60, Period: time.Minute}
	ctx := context.Background()
	count := func(n int) int {
		allowed := 0
		for range n {
			r, err := ratelimit.AllowOne(ctx, m, "r", "s", l, 1)
			if err != nil {
				t.Fatal(err)
			}
			if r.Allowed {
				allowed++
			}
		}
		return allowed
	}
	if got := count(200); got != 60 {
		t.Fatalf("burst: %d allowed", got)
	}
	clk.Advance(999 * time.Millisecond)
	if got := count(5); got != 0 {
		t.Fatalf("just before one interval: %d allowed", got)
	}
	clk.Advance(time.Millisecond)
	if got := count(5); got != 1 {
		t.Fatalf("at one interval: %d allowed", got)
	}
	clk.Advance(30 * time.Second)
	if got := count(100); got != 30 {
		t.Fatalf("after 30 s: %d allowed", got)
	}
	clk.Advance(time.Hour)
	if got := count(100); got != 60 {
		t.Fatalf("after idle: %d allowed", got)
	}
}

func TestMemoryIdleExpiry(t *testing.T) {
	clk := newClock()
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{Now: clk.Now, Shards: 1, SweepEvery: time.Minute})
	ctx := context.Background()
	l := ratelimit.Limit{Count: 10, Period: time.Minute}
	for i := range 100 {
		if _, err := ratelimit.AllowOne(ctx, m, "r", strconv.Itoa(i), l, 1); err != nil {
			t.Fatal(err)
		}
	}
	if m.Len() != 100 {
		t.Fatalf("Len = %d", m.Len())
	}
	clk.Advance(2 * time.Minute) // every TAT (6 s ahead) has passed; the sweep is due
	if _, err := ratelimit.AllowOne(ctx, m, "r", "new", l, 1); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 1 {
		t.Fatalf("after idle sweep Len = %d, want 1", m.Len())
	}
}

func TestMemoryBounded(t *testing.T) {
	clk := newClock()
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{Now: clk.Now, Shards: 4, MaxSubjects: 64})
	ctx := context.Background()
	l := ratelimit.Limit{Count: 1, Period: time.Hour}
	for i := range 1000 {
		r, err := ratelimit.AllowOne(ctx, m, "r", strconv.Itoa(i), l, 1)
		if err != nil || !r.Allowed {
			t.Fatalf("%d: %+v %v", i, r, err)
		}
	}
	if n := m.Len(); n > 64 {
		t.Fatalf("Len = %d, bound 64", n)
	}
	// The most recent subject is still limited.
	if r, _ := ratelimit.AllowOne(ctx, m, "r", "999", l, 1); r.Allowed {
		t.Fatal("latest subject lost its state")
	}
}

func BenchmarkMemory(b *testing.B) {
	for _, subjects := range []int{1, 100_000} {
		b.Run(fmt.Sprintf("subjects=%d", subjects), func(b *testing.B) {
			m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
			keys := make([]string, subjects)
			for i := range keys {
				keys[i] = "api_key:k_" + strconv.Itoa(i)
			}
			l := ratelimit.Limit{Count: 1_000_000, Period: time.Second}
			var worker atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				checks := []ratelimit.Check{{Rule: "per-key", Limit: l}}
				res := make([]ratelimit.Result, 1)
				// Each goroutine walks the subjects from its own offset, as
				// concurrent requests of different callers do; walking them
				// in lockstep would measure two cores fighting over one key.
				i := int(worker.Add(1)) * 7919
				for pb.Next() {
					checks[0].Subject = keys[i%subjects]
					i++
					if _, err := m.Allow(context.Background(), checks, res); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func BenchmarkMemoryTwoRules(b *testing.B) {
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = "api_key:k_" + strconv.Itoa(i)
	}
	l := ratelimit.Limit{Count: 1_000_000, Period: time.Second}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		checks := []ratelimit.Check{{Rule: "per-key", Limit: l}, {Rule: "per-ip", Limit: l}}
		res := make([]ratelimit.Result, 2)
		i := 0
		for pb.Next() {
			checks[0].Subject = keys[i%len(keys)]
			checks[1].Subject = keys[(i+1)%len(keys)]
			i++
			if _, err := m.Allow(context.Background(), checks, res); err != nil {
				b.Fatal(err)
			}
		}
	})
}
