package audit

import (
	"context"
	"errors"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// DefaultMaxSubjects bounds the subjects an Aggregator tracks per minute.
const DefaultMaxSubjects = 10000

// OverflowSubject collects violations of subjects beyond MaxSubjects in one minute.
const OverflowSubject = "*overflow*"

// Enqueuer is what an Aggregator needs from a Logger.
type Enqueuer interface {
	Enqueue(ctx context.Context, ev Event) error
}

// Violation is one rejected request.
type Violation struct {
	Subject  string // API key ID, user ID or client IP the limit applies to
	Rule     string // the rate-limit rule name
	Route    string
	SourceIP netip.Addr
}

type aggKey struct {
	minute        int64
	subject, rule string
}

type aggBucket struct {
	count    uint64
	route    string
	ip       netip.Addr
	distinct int // for the overflow bucket: subjects folded in
}

// Aggregator turns rate-limit violations into at most one ratelimit.violation
// event per subject, rule and minute (with a count), so a flood cannot flood
// the audit log. Memory is bounded by MaxSubjects per minute; further
// subjects are folded into OverflowSubject. Call Flush periodically (for
// example every 10 s) to emit finished minutes, and Close at shutdown.
type Aggregator struct {
	out         Enqueuer
	now         func() time.Time
	maxSubjects int

	mu       sync.Mutex
	buckets  map[aggKey]*aggBucket
	subjects map[int64]map[string]struct{}
}

// NewAggregator returns an Aggregator emitting into out. now is the clock
// (nil: time.Now); maxSubjects <= 0 means DefaultMaxSubjects.
func NewAggregator(out Enqueuer, now func() time.Time, maxSubjects int) *Aggregator {
	if now == nil {
		now = time.Now
	}
	if maxSubjects <= 0 {
		maxSubjects = DefaultMaxSubjects
	}
	return &Aggregator{out: out, now: now, maxSubjects: maxSubjects,
		buckets: map[aggKey]*aggBucket{}, subjects: map[int64]map[string]struct{}{}}
}

// Observe counts one violation in the current minute.
func (a *Aggregator) Observe(v Violation) {
	minute := a.now().Unix() / 60
	a.mu.Lock()
	defer a.mu.Unlock()
	subs := a.subjects[minute]
	if subs == nil {
		subs = map[string]struct{}{}
		a.subjects[minute] = subs
	}
	subject := v.Subject
	if _, seen := subs[subject]; !seen {
		if len(subs) >= a.maxSubjects {
			subject = OverflowSubject
		} else {
			subs[subject] = struct{}{}
		}
	}
	k := aggKey{minute: minute, subject: subject, rule: v.Rule}
	b := a.buckets[k]
	if b == nil {
		b = &aggBucket{route: v.Route, ip: v.SourceIP}
		a.buckets[k] = b
	}
	b.count++
	if subject == OverflowSubject {
		b.ip = netip.Addr{}
	}
}

// Flush emits every bucket of minutes that have ended. A bucket whose event
// the queue refuses stays and is retried on the next Flush.
func (a *Aggregator) Flush(ctx context.Context) error {
	return a.flush(ctx, a.now().Unix()/60)
}

// Close emits every bucket, including the current minute's.
func (a *Aggregator) Close(ctx context.Context) error {
	return a.flush(ctx, 1<<62)
}

func (a *Aggregator) flush(ctx context.Context, before int64) error {
	a.mu.Lock()
	var keys []aggKey
	for k := range a.buckets {
		if k.minute < before {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].minute != keys[j].minute {
			return keys[i].minute < keys[j].minute
		}
		if keys[i].subject != keys[j].subject {
			return keys[i].subject < keys[j].subject
		}
		return keys[i].rule < keys[j].rule
	})
	batch := make(map[aggKey]aggBucket, len(keys))
	for _, k := range keys {
		batch[k] = *a.buckets[k]
	}
	a.mu.Unlock()

	var errs []error
	for _, k := range keys {
		b := batch[k]
		start := time.Unix(k.minute*60, 0).UTC()
		ev := Event{
			Timestamp: start.Add(time.Minute), Type: TypeRateLimitViolation, User: k.subject,
			SourceIP: b.ip, Route: b.route, Outcome: "rate_limited",
			Details: map[string]any{"rule": k.rule, "count": b.count, "window_start": start, "window_seconds": 60},
		}
		if err := a.out.Enqueue(ctx, ev); err != nil {
			errs = append(errs, err)
			continue
		}
		a.mu.Lock()
		if cur := a.buckets[k]; cur != nil {
			if cur.count == b.count {
				delete(a.buckets, k)
			} else {
				cur.count -= b.count // counted after the snapshot: emitted next time
			}
		}
		a.mu.Unlock()
	}
	a.mu.Lock()
	for m := range a.subjects {
		if m < before && !a.hasMinute(m) {
			delete(a.subjects, m)
		}
	}
	a.mu.Unlock()
	return errors.Join(errs...)
}

func (a *Aggregator) hasMinute(m int64) bool {
	for k := range a.buckets {
		if k.minute == m {
			return true
		}
	}
	return false
}
