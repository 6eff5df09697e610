package auth

import (
	"context"
	"sync"
	"time"
)

// usage batches last-used times: each key is recorded at most once per
// interval, and pending times are written by flush in one store call.
type usage struct {
	store    UsageStore
	interval time.Duration

	mu      sync.Mutex
	last    map[string]time.Time // last time recorded per key
	pending map[string]time.Time
}

func newUsage(store UsageStore, interval time.Duration) *usage {
	return &usage{store: store, interval: interval, last: map[string]time.Time{}, pending: map[string]time.Time{}}
}

// record notes that id was used at now.
func (u *usage) record(id string, now time.Time) {
	u.mu.Lock()
	if t, ok := u.last[id]; ok && now.Sub(t) < u.interval {
		u.mu.Unlock()
		return
	}
	u.last[id] = now
	u.pending[id] = now
	u.mu.Unlock()
}

// flush writes pending times. On failure they are kept for the next flush.
func (u *usage) flush(ctx context.Context, now time.Time) error {
	u.mu.Lock()
	batch := u.pending
	u.pending = make(map[string]time.Time, len(batch))
	for id, t := range u.last {
		if now.Sub(t) >= u.interval {
			delete(u.last, id)
		}
	}
	u.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := u.store.TouchKeys(ctx, batch); err != nil {
		u.mu.Lock()
		for id, t := range batch {
			if cur, ok := u.pending[id]; !ok || t.After(cur) {
				u.pending[id] = t
			}
		}
		u.mu.Unlock()
		return err
	}
	return nil
}

func (u *usage) pendingLen() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.pending)
}
