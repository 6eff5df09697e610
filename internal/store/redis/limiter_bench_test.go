package redis

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/ratelimit"
)

// benchConcurrency matches redis-benchmark -c in scripts/bench-limiters.
const benchConcurrency = 64

// benchLimit is 1,000,000/s: interval 1 µs, burst 1,000,000, so the script
// runs its full admit-and-write path; scripts/bench-limiters passes the
// same arguments to redis-benchmark.
var benchLimit = ratelimit.Limit{Count: 1_000_000, Period: time.Second}

// TestLimiterScriptLoad loads the decision script and logs its SHA, for
// scripts/bench-limiters (go test -run TestLimiterScriptLoad -v).
func TestLimiterScriptLoad(t *testing.T) {
	c := testClient(t)
	src, sha := LimiterScript()
	got, err := c.ScriptLoad(context.Background(), src).Result()
	if err != nil {
		t.Fatal(err)
	}
	if got != sha {
		t.Fatalf("server SHA %s, LimiterScript SHA %s", got, sha)
	}
	t.Logf("sha=%s", sha)
}

// BenchmarkLimiter measures decisions per second with benchConcurrency
// concurrent callers on 100,000 subjects, one EVALSHA round trip each.
func BenchmarkLimiter(b *testing.B) {
	c := testClient(b)
	l := newTestLimiter(b, c, "rampart-bench:")
	if _, err := ratelimit.AllowOne(context.Background(), l, "per-key", "warm", benchLimit, 1); err != nil {
		b.Fatal(err)
	}
	subjects := make([]string, 100_000)
	for i := range subjects {
		subjects[i] = "api_key:k_" + strconv.Itoa(i)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	for range benchConcurrency {
		wg.Go(func() {
			checks := []ratelimit.Check{{Rule: "per-key", Limit: benchLimit}}
			res := make([]ratelimit.Result, 1)
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				checks[0].Subject = subjects[i%int64(len(subjects))]
				if _, err := l.Allow(context.Background(), checks, res); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
