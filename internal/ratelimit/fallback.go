package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrUnavailable is wrapped by errors returned when the shared store cannot
// decide and the configured mode is fail_closed.
var ErrUnavailable = errors.New("rate limit store unavailable")

// StoreErrorMode is what a [Fallback] does while its store fails
// (configuration key on_store_error).
type StoreErrorMode string

// Store error modes.
const (
	// FailOpen admits every request unlimited.
	FailOpen StoreErrorMode = "fail_open"
	// FailClosed refuses every limited request (the middleware answers 503).
	FailClosed StoreErrorMode = "fail_closed"
	// FailLocal limits with a per-instance memory limiter whose counts are
	// divided by the number of instances. The default.
	FailLocal StoreErrorMode = "local"
)

// ParseStoreErrorMode parses an on_store_error value; empty means local.
func ParseStoreErrorMode(s string) (StoreErrorMode, error) {
	switch m := StoreErrorMode(s); m {
	case "":
		return FailLocal, nil
	case FailOpen, FailClosed, FailLocal:
		return m, nil
	}
	return "", fmt.Errorf("on_store_error %q: want fail_open, fail_closed or local", s)
}

// FallbackOptions configures [NewFallback].
type FallbackOptions struct {
	// Mode is the on_store_error behaviour; default local.
	Mode StoreErrorMode
	// Instances is how many rampart instances share the store; in local
	// mode each limit's count and burst are divided by it (at least 1).
	// Default 1.
	Instances int
	// Local is the limiter used in local mode; default a new Memory using Now.
	Local Limiter
	// ProbeEvery is how often, while degraded, one request tries the store
	// again (the others go straight to the fallback so a dead store costs no
	// latency); default one second.
	ProbeEvery time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger gets one line when the store starts failing and one when it
	// answers again; default discards.
	Logger *slog.Logger
	// Registerer, if set, gets the rampart_ratelimit_degraded gauge (1 while
	// the store fails).
	Registerer prometheus.Registerer
}

// Fallback is a [Limiter] that uses a shared store limiter and switches to
// the configured mode while the store fails, back again as soon as the store
// answers.
type Fallback struct {
	primary    Limiter
	local      Limiter
	mode       StoreErrorMode
	instances  int
	probeEvery int64
	now        func() time.Time
	log        *slog.Logger
	gauge      prometheus.Gauge

	degraded  atomic.Bool
	nextProbe atomic.Int64
	mu        sync.Mutex // serializes switches so each is logged once
	lastErr   atomic.Pointer[error]
}

// NewFallback wraps primary with the behaviour for store errors.
func NewFallback(primary Limiter, opts FallbackOptions) (*Fallback, error) {
	if primary == nil {
		return nil, errors.New("ratelimit: fallback needs a primary limiter")
	}
	mode, err := ParseStoreErrorMode(string(opts.Mode))
	if err != nil {
		return nil, err
	}
	if opts.Instances < 0 {
		return nil, fmt.Errorf("ratelimit: instances %d must be positive", opts.Instances)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProbeEvery <= 0 {
		opts.ProbeEvery = time.Second
	}
	if opts.Local == nil && mode == FailLocal {
		opts.Local = NewMemory(MemoryOptions{Now: opts.Now})
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f := &Fallback{
		primary:    primary,
		local:      opts.Local,
		mode:       mode,
		instances:  max(1, opts.Instances),
		probeEvery: int64(opts.ProbeEvery),
		now:        opts.Now,
		log:        opts.Logger,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rampart_ratelimit_degraded",
			Help: "1 while the shared rate-limit store fails and on_store_error applies, else 0.",
		}),
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(f.gauge); err != nil {
			return nil, fmt.Errorf("register rampart_ratelimit_degraded: %w", err)
		}
	}
	return f, nil
}

// Degraded reports whether the store is currently considered failed.
func (f *Fallback) Degraded() bool { return f.degraded.Load() }

// Allow implements [Limiter].
func (f *Fallback) Allow(ctx context.Context, checks []Check, results []Result) (bool, error) {
	if err := validateChecks(checks, results); err != nil {
		return false, err
	}
	if f.degraded.Load() {
		now := f.now().UnixNano()
		next := f.nextProbe.Load()
		if now < next || !f.nextProbe.CompareAndSwap(next, now+f.probeEvery) {
			return f.fallback(ctx, checks, results)
		}
	}
	ok, err := f.primary.Allow(ctx, checks, results)
	if err == nil {
		if f.degraded.Load() {
			f.recover()
		}
		return ok, nil
	}
	if ctx.Err() != nil { // the caller gave up; that says nothing about the store
		return false, err
	}
	f.degrade(err)
	return f.fallback(ctx, checks, results)
}

func (f *Fallback) degrade(err error) {
	f.lastErr.Store(&err)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.degraded.Load() {
		return
	}
	f.nextProbe.Store(f.now().UnixNano() + f.probeEvery)
	f.degraded.Store(true)
	f.gauge.Set(1)
	f.log.LogAttrs(context.Background(), slog.LevelWarn, "rate limit store unavailable",
		slog.String("on_store_error", string(f.mode)), slog.String("error", err.Error()))
}

func (f *Fallback) recover() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.degraded.Load() {
		return
	}
	f.degraded.Store(false)
	f.gauge.Set(0)
	f.log.LogAttrs(context.Background(), slog.LevelInfo, "rate limit store recovered",
		slog.String("on_store_error", string(f.mode)))
}

func (f *Fallback) fallback(ctx context.Context, checks []Check, results []Result) (bool, error) {
	switch f.mode {
	case FailOpen:
		for i, c := range checks {
			results[i] = Result{Allowed: true, Limit: c.Limit, Degraded: true, Unlimited: true}
		}
		return true, nil
	case FailClosed:
		err := errors.New("store error")
		if p := f.lastErr.Load(); p != nil {
			err = *p
		}
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	local := make([]Check, len(checks))
	for i, c := range checks {
		l := c.Limit
		l.Burst = max(1, l.Capacity()/f.instances)
		l.Count = max(1, l.Count/f.instances)
		local[i] = Check{Rule: c.Rule, Subject: c.Subject, Limit: l, Cost: min(c.cost(), l.Burst)}
	}
	ok, err := f.local.Allow(ctx, local, results)
	if err != nil {
		return false, fmt.Errorf("local rate limit: %w", err)
	}
	for i := range checks {
		results[i].Degraded = true
	}
	return ok, nil
}
