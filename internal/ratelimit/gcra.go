package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidCost is returned when a request's cost is below 1 or above the
// limit's burst (such a request could never be admitted).
var ErrInvalidCost = errors.New("invalid rate limit cost")

// Result is the outcome of one check.
type Result struct {
	// Allowed reports whether this check admits the request. In a
	// multi-check decision the request is admitted only when all do.
	Allowed bool
	// Limit is the limit the check applied.
	Limit Limit
	// Remaining is how many more requests of cost 1 the subject may make
	// right now, after this decision. It is 0 after the last admitted
	// request and never increases without time passing.
	Remaining int
	// ResetAfter is how long until the subject's quota is full again.
	ResetAfter time.Duration
	// RetryAfter is how long until this request could be admitted; zero
	// when Allowed.
	RetryAfter time.Duration
	// Degraded is set by [Fallback] when the shared store failed: in local
	// mode the numbers come from the per-instance limiter (whose Limit is
	// the divided one); see Unlimited for fail_open.
	Degraded bool
	// Unlimited is set when fail_open admitted the request without counting
	// it; the middleware then writes no rate-limit headers.
	Unlimited bool
}

// Decide is GCRA as a pure function. Given the current time, the stored
// theoretical arrival time tat (zero for a subject never seen), the limit and
// the cost n, it returns the result and the TAT to store. When the request is
// rejected next equals tat: a rejected request consumes nothing.
func Decide(now, tat time.Time, l Limit, n int) (r Result, next time.Time, err error) {
	if err := l.Validate(); err != nil {
		return Result{}, tat, err
	}
	if err := checkCost(l, n); err != nil {
		return Result{}, tat, err
	}
	var rel int64 // tat relative to now; saturates for the zero Time
	if !tat.IsZero() {
		rel = int64(tat.Sub(now))
	}
	if rel < 0 {
		rel = 0
	}
	ok, newRel, rem, reset, retry := gcra(0, rel, int64(l.Interval()), int64(l.Capacity()), int64(n))
	r = Result{Allowed: ok, Limit: l, Remaining: int(rem), ResetAfter: time.Duration(reset), RetryAfter: time.Duration(retry)}
	if !ok {
		return r, tat, nil
	}
	return r, now.Add(time.Duration(newRel)), nil
}

func checkCost(l Limit, n int) error {
	if n < 1 || n > l.Capacity() {
		return fmt.Errorf("%w: %d not in 1..%d for %s", ErrInvalidCost, n, l.Capacity(), l)
	}
	return nil
}

// gcra is the algorithm on integer ticks (nanoseconds in memory,
// microseconds in Redis, whose Lua script mirrors this function). now is the
// current time, tat the stored theoretical arrival time (any value ≤ now
// means "no debt"), interval the emission interval T, burst the capacity B and
// n the cost. It returns whether the request is admitted, the TAT to store if
// it is, the remaining quota after the decision, and the reset and retry
// delays. All arithmetic stays below B·T + now, which Limit.Validate bounds.
func gcra(now, tat, interval, burst, n int64) (allowed bool, newTAT, remaining, resetAfter, retryAfter int64) {
	if tat < now {
		tat = now
	}
	newTAT = tat + n*interval
	allowAt := newTAT - burst*interval
	if now < allowAt {
		remaining = (now + burst*interval - tat) / interval
		if remaining < 0 { // the limit shrank since tat was stored
			remaining = 0
		}
		return false, tat, remaining, tat - now, allowAt - now
	}
	return true, newTAT, (now + burst*interval - newTAT) / interval, newTAT - now, 0
}

// ResultAt is the result of a decision made by a store that runs this
// package's algorithm on integer ticks of length unit (the Redis limiter uses
// microseconds): now and tat are the store's clock and the stored TAT it
// decided against, interval the emission interval, all in ticks.
func ResultAt(now, tat, interval int64, l Limit, n int, unit time.Duration) Result {
	ok, _, rem, reset, retry := gcra(now, tat, interval, int64(l.Capacity()), int64(n))
	return Result{Allowed: ok, Limit: l, Remaining: int(rem),
		ResetAfter: time.Duration(reset) * unit, RetryAfter: time.Duration(retry) * unit}
}

// PeekAt is the state of a check that was not charged (its decision was
// rejected by another check), in the units of [ResultAt]. Allowed is false;
// the caller sets it.
func PeekAt(now, tat, interval int64, l Limit, unit time.Duration) Result {
	tat = max(tat, now)
	rem := max(0, (now+int64(l.Capacity())*interval-tat)/interval)
	return Result{Limit: l, Remaining: int(rem), ResetAfter: time.Duration(tat-now) * unit}
}
