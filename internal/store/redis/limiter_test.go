package redis

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	goredis "github.com/redis/go-redis/v9"

	"github.com/rampart-security/rampart/internal/ratelimit"
	"github.com/rampart-security/rampart/internal/ratelimit/ratelimittest"
	"github.com/rampart-security/rampart/internal/redistest"
)

// testClient connects to the test Redis (see redistest.Client).
func testClient(t testing.TB) *goredis.Client { return redistest.Client(t, 64) }

// testPrefix is a key prefix unique to the test (see redistest.Prefix).
func testPrefix(t testing.TB, c *goredis.Client) string { return redistest.Prefix(t, c) }

func newTestLimiter(t testing.TB, c *goredis.Client, prefix string) *Limiter {
	t.Helper()
	l, err := NewLimiter(c, LimiterOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLimiterContract(t *testing.T) {
	c := testClient(t)
	ratelimittest.Contract(t, func(t *testing.T) ratelimit.Limiter {
		return newTestLimiter(t, c, testPrefix(t, c))
	})
}

// TestLimiterContractSplit runs the contract through the Redis Cluster path
// (dry run per subject, then commit) on a single server.
func TestLimiterContractSplit(t *testing.T) {
	c := testClient(t)
	ratelimittest.Contract(t, func(t *testing.T) ratelimit.Limiter {
		l := newTestLimiter(t, c, testPrefix(t, c))
		l.cluster = true
		return l
	})
}

// TestLimiterTwoInstances: two limiters with their own connections share one
// Redis; 200 concurrent requests against 60/min admit exactly 60, and the
// admitted ones report each Remaining value from 59 down to 0 exactly once.
func TestLimiterTwoInstances(t *testing.T) {
	c1 := testClient(t)
	c2 := testClient(t)
	prefix := testPrefix(t, c1)
	a, b := newTestLimiter(t, c1, prefix), newTestLimiter(t, c2, prefix)
	lim, _ := ratelimit.ParseLimit("60/min")
	ctx := context.Background()
	start, err := c1.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	remaining := map[int]int{}
	rejected := 0
	var wg sync.WaitGroup
	for w := range 8 {
		l := a
		if w%2 == 1 {
			l = b
		}
		wg.Go(func() {
			for range 25 {
				r, err := ratelimit.AllowOne(ctx, l, "per-key", "api_key:k_two", lim, 1)
				mu.Lock()
				switch {
				case err != nil:
					t.Error(err)
				case r.Allowed:
					remaining[r.Remaining]++
				default:
					rejected++
					if r.Remaining != 0 || r.RetryAfter <= 0 || r.RetryAfter > time.Second || r.ResetAfter > time.Minute {
						t.Errorf("rejection %+v", r)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	end, err := c1.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// GCRA adds one request per second; the run normally takes far less.
	extra := int(end.Sub(start) / time.Second)
	allowed := 200 - rejected
	if allowed < 60 || allowed > 60+extra {
		t.Fatalf("allowed %d of 200 (run spanned %v of server time)", allowed, end.Sub(start))
	}
	if extra == 0 {
		for r := range 60 {
			if remaining[r] != 1 {
				t.Fatalf("remaining %d reported %d times: %v", r, remaining[r], remaining)
			}
		}
	}
}

func TestLimiterNoScript(t *testing.T) {
	c := testClient(t)
	l := newTestLimiter(t, c, testPrefix(t, c))
	ctx := context.Background()
	lim := ratelimit.Limit{Count: 3, Period: time.Hour}
	if _, err := ratelimit.AllowOne(ctx, l, "r", "s", lim, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r, err := ratelimit.AllowOne(ctx, l, "r", "s", lim, 1)
	if err != nil || r.Remaining != 1 {
		t.Fatalf("after SCRIPT FLUSH: %+v %v", r, err)
	}
	_, sha := LimiterScript()
	if ok, err := c.ScriptExists(ctx, sha).Result(); err != nil || !ok[0] {
		t.Fatalf("script not reloaded: %v %v", ok, err)
	}
}

// TestLimiterTTL: a key lives exactly as long as its state matters.
func TestLimiterTTL(t *testing.T) {
	c := testClient(t)
	l := newTestLimiter(t, c, testPrefix(t, c))
	ctx := context.Background()
	lim := ratelimit.Limit{Count: 10, Period: time.Hour} // interval 6 min
	for range 3 {
		if _, err := ratelimit.AllowOne(ctx, l, "ttl", "s", lim, 1); err != nil {
			t.Fatal(err)
		}
	}
	ttl, err := c.PTTL(ctx, l.Key("ttl", "s")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 17*time.Minute || ttl > 18*time.Minute {
		t.Fatalf("TTL %v after 3 requests of 6 min each", ttl)
	}
	// A rejected decision writes nothing.
	for range 7 {
		ratelimit.AllowOne(ctx, l, "ttl", "s", lim, 1)
	}
	before, _ := c.Get(ctx, l.Key("ttl", "s")).Result()
	if r, _ := ratelimit.AllowOne(ctx, l, "ttl", "s", lim, 1); r.Allowed {
		t.Fatal("11th request admitted")
	}
	if after, _ := c.Get(ctx, l.Key("ttl", "s")).Result(); after != before {
		t.Fatalf("rejected request changed state %s -> %s", before, after)
	}
}

func TestLimiterKey(t *testing.T) {
	l, _ := NewLimiter(goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}), LimiterOptions{Prefix: "p:"})
	for _, tt := range []struct{ rule, subject, want string }{
		{"per-key", "api_key:k_1", "p:rl:{api_key:k_1}:per-key"},
		{"r", "user:a}b{c%", "p:rl:{user:a%7Db%7Bc%25}:r"},
	} {
		if got := l.Key(tt.rule, tt.subject); got != tt.want {
			t.Errorf("Key(%q, %q) = %q, want %q", tt.rule, tt.subject, got, tt.want)
		}
	}
}

// server is a redis-server process owned by a test.
type server struct {
	t    *testing.T
	port string
	cmd  *exec.Cmd
}

func startServer(t *testing.T, port string) *server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("RAMPART_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("redis-server not in PATH")
		}
		t.Skip("redis-server not in PATH")
	}
	if port == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ = net.SplitHostPort(ln.Addr().String())
		ln.Close()
	}
	s := &server{t: t, port: port}
	s.cmd = exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	c := goredis.NewClient(&goredis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	for i := 0; ; i++ { // readiness: bounded polling, not a timing assertion
		if c.Ping(context.Background()).Err() == nil {
			return s
		}
		if i == 200 {
			t.Fatalf("redis-server on %s did not start", port)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *server) addr() string { return "127.0.0.1:" + s.port }

func (s *server) stop() {
	if s.cmd.Process != nil && s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestStoreDown stops Redis under a Fallback in each on_store_error mode and
// starts it again: the mode applies while it is down, one log line marks
// each switch, the gauge follows, and exact limiting resumes by itself.
func TestStoreDown(t *testing.T) {
	lim := ratelimit.Limit{Count: 60, Period: time.Hour}
	for _, mode := range []ratelimit.StoreErrorMode{ratelimit.FailOpen, ratelimit.FailClosed, ratelimit.FailLocal} {
		t.Run(string(mode), func(t *testing.T) {
			srv := startServer(t, "")
			c := goredis.NewClient(&goredis.Options{Addr: srv.addr(), MaxRetries: -1, DialTimeout: time.Second})
			t.Cleanup(func() { c.Close() })
			primary := newTestLimiter(t, c, "down:")
			clk := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			var logs bytes.Buffer
			reg := prometheus.NewRegistry()
			f, err := ratelimit.NewFallback(primary, ratelimit.FallbackOptions{
				Mode: mode, Instances: 3, Now: clk.Now, ProbeEvery: time.Second,
				Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Registerer: reg,
			})
			if err != nil {
				t.Fatal(err)
			}
			gauge := func() float64 {
				g, err := testutil.GatherAndCount(reg, "rampart_ratelimit_degraded")
				if err != nil || g != 1 {
					t.Fatalf("gauge: %d %v", g, err)
				}
				mfs, _ := reg.Gather()
				return mfs[0].GetMetric()[0].GetGauge().GetValue()
			}
			ctx := context.Background()
			allow := func() (ratelimit.Result, error) {
				return ratelimit.AllowOne(ctx, f, "per-key", "api_key:k_down", lim, 1)
			}
			for i := range 10 {
				if r, err := allow(); err != nil || !r.Allowed || r.Degraded || r.Remaining != 59-i {
					t.Fatalf("store up, request %d: %+v %v", i, r, err)
				}
			}

			srv.stop()
			allowed := 0
			for i := range 40 {
				r, err := allow()
				switch mode {
				case ratelimit.FailOpen:
					if err != nil || !r.Allowed || !r.Unlimited {
						t.Fatalf("fail_open %d: %+v %v", i, r, err)
					}
				case ratelimit.FailClosed:
					if !errors.Is(err, ratelimit.ErrUnavailable) {
						t.Fatalf("fail_closed %d: %+v %v", i, r, err)
					}
				case ratelimit.FailLocal:
					if err != nil || !r.Degraded || r.Limit.Count != 20 {
						t.Fatalf("local %d: %+v %v", i, r, err)
					}
					if r.Allowed {
						allowed++
					}
				}
			}
			if mode == ratelimit.FailLocal && allowed != 20 {
				t.Fatalf("local mode admitted %d, want 60/3 = 20", allowed)
			}
			if !f.Degraded() || gauge() != 1 {
				t.Fatalf("degraded=%v gauge=%v", f.Degraded(), gauge())
			}
			clk.Advance(time.Second) // a probe is due; the store is still down
			if _, err := allow(); mode != ratelimit.FailClosed && err != nil {
				t.Fatal(err)
			}

			startServer(t, srv.port) // no persistence: the state starts empty
			if allow(); !f.Degraded() {
				t.Fatal("left degraded mode before a probe was due")
			}
			clk.Advance(time.Second)
			for i := range 60 {
				r, err := allow()
				if err != nil || !r.Allowed || r.Degraded || r.Remaining != 59-i {
					t.Fatalf("recovered, request %d: %+v %v", i, r, err)
				}
			}
			if r, err := allow(); err != nil || r.Allowed {
				t.Fatalf("61st after recovery: %+v %v", r, err)
			}
			if f.Degraded() || gauge() != 0 {
				t.Fatalf("degraded=%v gauge=%v after recovery", f.Degraded(), gauge())
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 2 || !strings.Contains(lines[0], `"msg":"rate limit store unavailable"`) ||
				!strings.Contains(lines[0], `"on_store_error":"`+string(mode)+`"`) ||
				!strings.Contains(lines[1], `"msg":"rate limit store recovered"`) {
				t.Fatalf("want exactly two switch lines, got:\n%s", logs.String())
			}
		})
	}
}

// TestLimiterRefund: the refund used on a Cluster race gives back exactly
// what the decision took.
func TestLimiterRefund(t *testing.T) {
	c := testClient(t)
	l := newTestLimiter(t, c, testPrefix(t, c))
	ctx := context.Background()
	lim := ratelimit.Limit{Count: 5, Period: 24 * time.Hour}
	checks := []ratelimit.Check{{Rule: "a", Subject: "s1", Limit: lim, Cost: 2}, {Rule: "b", Subject: "s2", Limit: lim}}
	res := make([]ratelimit.Result, 2)
	if _, err := ratelimit.AllowOne(ctx, l, "a", "s1", lim, 1); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Allow(ctx, checks, res); !ok || err != nil || res[0].Remaining != 2 {
		t.Fatalf("allow: %v %v %+v", ok, err, res)
	}
	if err := l.refundGroup(ctx, checks, []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	if r, _ := ratelimit.AllowOne(ctx, l, "a", "s1", lim, 1); r.Remaining != 3 {
		t.Fatalf("a after refund: %+v", r)
	}
	if n, _ := c.Exists(ctx, l.Key("b", "s2")).Result(); n != 0 {
		t.Fatal("fully refunded state not deleted")
	}
}
