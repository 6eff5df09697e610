package ratelimit_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-security/rampart/internal/ratelimit"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

// flaky is a shared-store stand-in that fails while down is set.
type flaky struct {
	down  atomic.Bool
	calls atomic.Int64
	inner ratelimit.Limiter
}

func (f *flaky) Allow(ctx context.Context, c []ratelimit.Check, r []ratelimit.Result) (bool, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return false, errors.New("dial tcp 127.0.0.1:6379: connection refused")
	}
	return f.inner.Allow(ctx, c, r)
}

func TestFallback(t *testing.T) {
	lim := ratelimit.Limit{Count: 10, Period: time.Hour}
	for _, tt := range []struct {
		mode ratelimit.StoreErrorMode
		// while down, 10 requests:
		allowed int
		errs    int
	}{
		{ratelimit.FailOpen, 10, 0},
		{ratelimit.FailClosed, 0, 10},
		{ratelimit.FailLocal, 5, 0}, // 10 / 2 instances
		{"", 5, 0},                  // default local
	} {
		t.Run(string(tt.mode), func(t *testing.T) {
			clk := newClock()
			store := &flaky{inner: ratelimit.NewMemory(ratelimit.MemoryOptions{Now: clk.Now})}
			var logs bytes.Buffer
			reg := prometheus.NewRegistry()
			f, err := ratelimit.NewFallback(store, ratelimit.FallbackOptions{
				Mode: tt.mode, Instances: 2, Now: clk.Now,
				Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Registerer: reg,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			allow := func() (ratelimit.Result, error) { return ratelimit.AllowOne(ctx, f, "r", "s", lim, 1) }
			if r, err := allow(); err != nil || !r.Allowed || r.Degraded || r.Remaining != 9 {
				t.Fatalf("up: %+v %v", r, err)
			}

			store.down.Store(true)
			allowed, errs := 0, 0
			for range 10 {
				r, err := allow()
				if err != nil {
					if !errors.Is(err, ratelimit.ErrUnavailable) {
						t.Fatalf("error %v does not wrap ErrUnavailable", err)
					}
					errs++
					continue
				}
				if !r.Degraded {
					t.Fatalf("result while down not marked degraded: %+v", r)
				}
				if r.Allowed {
					allowed++
				}
			}
			if allowed != tt.allowed || errs != tt.errs {
				t.Fatalf("down: allowed %d errors %d", allowed, errs)
			}
			if calls := store.calls.Load(); calls != 2 {
				t.Fatalf("store tried %d times; only the first failing request should reach it before a probe is due", calls)
			}
			if degradedGauge(t, reg) != 1 {
				t.Fatal("gauge not 1 while degraded")
			}

			clk.Advance(time.Second) // probe due, store still down: stays degraded, no new log line
			allow()
			allow()
			if store.calls.Load() != 3 || !f.Degraded() {
				t.Fatalf("probe: calls %d degraded %v", store.calls.Load(), f.Degraded())
			}

			store.down.Store(false)
			if allow(); !f.Degraded() {
				t.Fatal("recovered before the next probe")
			}
			clk.Advance(time.Second)
			r, err := allow()
			if err != nil || r.Degraded || !r.Allowed || r.Remaining != 8 || f.Degraded() {
				t.Fatalf("recovered: %+v %v", r, err)
			}
			if degradedGauge(t, reg) != 0 {
				t.Fatal("gauge not 0 after recovery")
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 2 || !strings.Contains(lines[0], "rate limit store unavailable") || !strings.Contains(lines[1], "rate limit store recovered") {
				t.Fatalf("log lines:\n%s", logs.String())
			}
		})
	}
}

func degradedGauge(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "rampart_ratelimit_degraded" {
		t.Fatalf("registry: %v %v", mfs, err)
	}
	return mfs[0].GetMetric()[0].GetGauge().GetValue()
}

func TestFallbackNotDegradedBy(t *testing.T) {
	store := &flaky{inner: ratelimit.NewMemory(ratelimit.MemoryOptions{})}
	store.down.Store(true)
	f, err := ratelimit.NewFallback(store, ratelimit.FallbackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// An invalid check is the caller's error, not the store's.
	if _, err := ratelimit.AllowOne(context.Background(), f, "r", "s", ratelimit.Limit{}, 1); !errors.Is(err, ratelimit.ErrInvalidLimit) || f.Degraded() {
		t.Fatalf("invalid check: %v degraded=%v", err, f.Degraded())
	}
	// A caller that gave up says nothing about the store.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ratelimit.AllowOne(ctx, f, "r", "s", ratelimit.Limit{Count: 1, Period: time.Hour}, 1); err == nil || f.Degraded() {
		t.Fatalf("cancelled: %v degraded=%v", err, f.Degraded())
	}
}

func TestFallbackOptions(t *testing.T) {
	store := &flaky{}
	if _, err := ratelimit.NewFallback(store, ratelimit.FallbackOptions{Mode: "maybe"}); err == nil {
		t.Fatal("accepted unknown mode")
	}
	if _, err := ratelimit.NewFallback(nil, ratelimit.FallbackOptions{}); err == nil {
		t.Fatal("accepted nil primary")
	}
	reg := prometheus.NewRegistry()
	if _, err := ratelimit.NewFallback(store, ratelimit.FallbackOptions{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := ratelimit.NewFallback(store, ratelimit.FallbackOptions{Registerer: reg}); err == nil {
		t.Fatal("registered the gauge twice without error")
	}
	for in, want := range map[string]ratelimit.StoreErrorMode{"": ratelimit.FailLocal, "fail_open": ratelimit.FailOpen, "fail_closed": ratelimit.FailClosed, "local": ratelimit.FailLocal} {
		if got, err := ratelimit.ParseStoreErrorMode(in); err != nil || got != want {
			t.Errorf("ParseStoreErrorMode(%q) = %q, %v", in, got, err)
		}
	}
}

// TestMiddlewareFailOpen: requests admitted by fail_open carry no rate-limit
// headers, since nothing was counted.
func TestMiddlewareFailOpen(t *testing.T) {
	store := &flaky{inner: ratelimit.NewMemory(ratelimit.MemoryOptions{})}
	store.down.Store(true)
	f := must(ratelimit.NewFallback(store, ratelimit.FallbackOptions{Mode: ratelimit.FailOpen}))
	h := must(ratelimit.New(ratelimit.Options{
		Limiter: f,
		Rules: func(*http.Request) []ratelimit.Rule {
			return []ratelimit.Rule{{Name: "g", Key: ratelimit.KeyIP, Limit: must(ratelimit.ParseLimit("1/min"))}}
		},
	}))(okHandler)
	for range 3 {
		w, _ := do(h, reqinfo.Info{ClientIP: netip.MustParseAddr("192.0.2.1")})
		if w.Code != http.StatusNoContent || w.Header().Get("RateLimit") != "" {
			t.Fatalf("fail_open: %d %v", w.Code, w.Header())
		}
	}
}
