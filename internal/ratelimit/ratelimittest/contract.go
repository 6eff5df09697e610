// Package ratelimittest is the contract every ratelimit.Limiter passes. The
// limits used are long (per day), so the tests hold whatever clock the
// implementation reads, and every test uses fresh subjects.
package ratelimittest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/ratelimit"
)

const day = 24 * time.Hour

// Contract runs the limiter contract against limiters from open, which is
// called once per subtest.
func Contract(t *testing.T, open func(t *testing.T) ratelimit.Limiter) {
	t.Run("ExactCount", func(t *testing.T) { exactCount(t, open(t)) })
	t.Run("AllMustPass", func(t *testing.T) { allMustPass(t, open(t)) })
	t.Run("Cost", func(t *testing.T) { cost(t, open(t)) })
	t.Run("SameStateTwice", func(t *testing.T) { sameStateTwice(t, open(t)) })
	t.Run("Independent", func(t *testing.T) { independent(t, open(t)) })
	t.Run("Concurrent", func(t *testing.T) { concurrent(t, open(t)) })
	t.Run("Invalid", func(t *testing.T) { invalid(t, open(t)) })
}

func allow(t *testing.T, l ratelimit.Limiter, checks ...ratelimit.Check) (bool, []ratelimit.Result) {
	t.Helper()
	res := make([]ratelimit.Result, len(checks))
	ok, err := l.Allow(context.Background(), checks, res)
	if err != nil {
		t.Fatalf("Allow: %v", err)
	}
	return ok, res
}

func exactCount(t *testing.T, l ratelimit.Limiter) {
	c := ratelimit.Check{Rule: "exact", Subject: "s:" + t.Name(), Limit: ratelimit.Limit{Count: 5, Period: day}}
	for i := 1; i <= 5; i++ {
		ok, res := allow(t, l, c)
		if !ok || !res[0].Allowed || res[0].Remaining != 5-i || res[0].RetryAfter != 0 {
			t.Fatalf("request %d: ok=%v %+v", i, ok, res[0])
		}
		if res[0].ResetAfter <= time.Duration(i-1)*day/5 || res[0].ResetAfter > time.Duration(i)*day/5 {
			t.Fatalf("request %d: reset %v", i, res[0].ResetAfter)
		}
	}
	for range 3 {
		ok, res := allow(t, l, c)
		if ok || res[0].Allowed || res[0].Remaining != 0 || res[0].RetryAfter <= 0 || res[0].RetryAfter > day/5 {
			t.Fatalf("over the limit: ok=%v %+v", ok, res[0])
		}
	}
}

func allMustPass(t *testing.T, l ratelimit.Limiter) {
	wide := ratelimit.Check{Rule: "wide", Subject: "global:" + t.Name(), Limit: ratelimit.Limit{Count: 10, Period: day}}
	narrow := ratelimit.Check{Rule: "narrow", Subject: "key:" + t.Name(), Limit: ratelimit.Limit{Count: 2, Period: day}}
	for i := 1; i <= 2; i++ {
		if ok, res := allow(t, l, wide, narrow); !ok || res[0].Remaining != 10-i || res[1].Remaining != 2-i {
			t.Fatalf("request %d: %v %+v", i, ok, res)
		}
	}
	for range 3 {
		ok, res := allow(t, l, wide, narrow)
		if ok {
			t.Fatal("admitted past the narrow rule")
		}
		if !res[0].Allowed || res[0].Remaining != 8 || res[1].Allowed || res[1].RetryAfter <= 0 {
			t.Fatalf("rejection: %+v", res)
		}
	}
	// The rejected requests charged nothing to the rule that passed.
	if ok, res := allow(t, l, wide); !ok || res[0].Remaining != 7 {
		t.Fatalf("wide after rejections: %v %+v", ok, res[0])
	}
}

func cost(t *testing.T, l ratelimit.Limiter) {
	c := ratelimit.Check{Rule: "cost", Subject: "s:" + t.Name(), Limit: ratelimit.Limit{Count: 10, Period: day}, Cost: 4}
	for _, want := range []struct {
		ok  bool
		rem int
	}{{true, 6}, {true, 2}, {false, 2}} {
		if ok, res := allow(t, l, c); ok != want.ok || res[0].Remaining != want.rem {
			t.Fatalf("want %+v, got %v %+v", want, ok, res[0])
		}
	}
	c.Cost = 2
	if ok, res := allow(t, l, c); !ok || res[0].Remaining != 0 {
		t.Fatalf("last two: %v %+v", ok, res[0])
	}
}

func sameStateTwice(t *testing.T, l ratelimit.Limiter) {
	c := ratelimit.Check{Rule: "twice", Subject: "s:" + t.Name(), Limit: ratelimit.Limit{Count: 3, Period: day}}
	if ok, res := allow(t, l, c, c); !ok || res[0].Remaining != 2 || res[1].Remaining != 1 {
		t.Fatalf("first: %v %+v", ok, res)
	}
	if ok, _ := allow(t, l, c, c); ok {
		t.Fatal("second pair admitted with one unit left")
	}
	if ok, res := allow(t, l, c); !ok || res[0].Remaining != 0 {
		t.Fatalf("single after rejected pair: %v %+v", ok, res)
	}
}

func independent(t *testing.T, l ratelimit.Limiter) {
	lim := ratelimit.Limit{Count: 1, Period: day}
	for _, c := range []ratelimit.Check{
		{Rule: "a", Subject: "s1:" + t.Name(), Limit: lim},
		{Rule: "a", Subject: "s2:" + t.Name(), Limit: lim},
		{Rule: "b", Subject: "s1:" + t.Name(), Limit: lim},
	} {
		if ok, _ := allow(t, l, c); !ok {
			t.Fatalf("%+v shares state with another rule or subject", c)
		}
		if ok, _ := allow(t, l, c); ok {
			t.Fatalf("%+v admitted twice", c)
		}
	}
}

func concurrent(t *testing.T, l ratelimit.Limiter) {
	a := ratelimit.Check{Rule: "conc", Subject: "s:" + t.Name(), Limit: ratelimit.Limit{Count: 60, Period: day}}
	b := ratelimit.Check{Rule: "conc-wide", Subject: "g:" + t.Name(), Limit: ratelimit.Limit{Count: 1000, Period: day}}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			res := make([]ratelimit.Result, 2)
			for range 10 {
				ok, err := l.Allow(context.Background(), []ratelimit.Check{b, a}, res)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if allowed.Load() != 60 {
		t.Fatalf("200 requests against 60/day: %d allowed", allowed.Load())
	}
	if ok, res := allow(t, l, b); !ok || res[0].Remaining != 1000-61 {
		t.Fatalf("wide rule charged by rejected requests: %+v", res[0])
	}
}

func invalid(t *testing.T, l ratelimit.Limiter) {
	res := make([]ratelimit.Result, 1)
	_, err := l.Allow(context.Background(), []ratelimit.Check{{Rule: "x", Subject: "y"}}, res)
	if !errors.Is(err, ratelimit.ErrInvalidLimit) {
		t.Fatalf("zero limit: %v", err)
	}
	_, err = l.Allow(context.Background(), []ratelimit.Check{{Rule: "x", Subject: "y", Limit: ratelimit.Limit{Count: 2, Period: day}, Cost: 3}}, res)
	if !errors.Is(err, ratelimit.ErrInvalidCost) {
		t.Fatalf("cost above burst: %v", err)
	}
}
