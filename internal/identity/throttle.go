package identity

import (
	"sync"
	"time"
)

// ipThrottle slows password guessing from one client IP across accounts:
// past threshold failures within window, each further failure blocks the
// IP for twice as long as the last (1s, 2s, 4s, ... up to max). It lives
// in memory, per instance; the cross-instance limit is the rate limiter
// on the login route.
type ipThrottle struct {
	mu        sync.Mutex
	threshold int
	window    time.Duration
	max       time.Duration
	limit     int // most IPs tracked
	ips       map[string]*ipState
}

type ipState struct {
	failures     int
	windowStart  time.Time
	blockedUntil time.Time
}

func newIPThrottle(threshold int, window, max time.Duration) *ipThrottle {
	return &ipThrottle{threshold: threshold, window: window, max: max, limit: 100_000, ips: map[string]*ipState{}}
}

// blocked returns how long ip must still wait at now; zero when it may try.
func (t *ipThrottle) blocked(ip string, now time.Time) time.Duration {
	if ip == "" {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.ips[ip]
	if !ok || !now.Before(st.blockedUntil) {
		return 0
	}
	return st.blockedUntil.Sub(now)
}

// fail records a failed login from ip at now.
func (t *ipThrottle) fail(ip string, now time.Time) {
	if ip == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.ips[ip]
	if !ok {
		if len(t.ips) >= t.limit {
			t.evict(now)
		}
		st = &ipState{windowStart: now}
		t.ips[ip] = st
	}
	if now.Sub(st.windowStart) >= t.window && !now.Before(st.blockedUntil) {
		st.failures, st.windowStart = 0, now
	}
	st.failures++
	if over := st.failures - t.threshold; over > 0 {
		d := time.Second << min(over-1, 30)
		if d > t.max || d <= 0 {
			d = t.max
		}
		st.blockedUntil = now.Add(d)
	}
}

// evict drops IPs whose window is over and that are not blocked; if that
// frees nothing, it starts afresh rather than grow without bound.
func (t *ipThrottle) evict(now time.Time) {
	for ip, st := range t.ips {
		if now.Sub(st.windowStart) >= t.window && !now.Before(st.blockedUntil) {
			delete(t.ips, ip)
		}
	}
	if len(t.ips) >= t.limit {
		clear(t.ips)
	}
}

// throttled is the error for a login refused because its IP is blocked.
type throttled struct{ after time.Duration }

func (e *throttled) Error() string {
	return "identity: too many failed logins from this address; retry in " + e.after.String()
}

func (e *throttled) Is(target error) bool { return target == ErrTooManyAttempts }
