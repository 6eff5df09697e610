package auth

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rampart-security/rampart/internal/apikey"
)

// entry is one cached lookup result. It is immutable once stored.
type entry struct {
	rec     apikey.Record
	found   bool
	perms   string // X-Rampart-Permissions value, computed once
	expires time.Time
}

// call is a lookup in flight, shared by concurrent misses on one ID.
type call struct {
	done chan struct{}
	e    *entry
	err  error
}

// cache is a bounded map of key ID to lookup result with a short TTL, a
// negative TTL for unknown IDs and one store round trip per ID per miss.
type cache struct {
	store       KeyLookup
	now         func() time.Time
	ttl, negTTL time.Duration
	max         int

	mu       sync.Mutex
	entries  map[string]*entry
	inflight map[string]*call
	stale    map[string]bool // in-flight lookups invalidated before they finished
}

func newCache(store KeyLookup, now func() time.Time, ttl, negTTL time.Duration, max int) *cache {
	return &cache{
		store: store, now: now, ttl: ttl, negTTL: negTTL, max: max,
		entries:  make(map[string]*entry),
		inflight: make(map[string]*call),
		stale:    make(map[string]bool),
	}
}

// get returns the entry for id from memory or, on a miss, from the store.
// A store error other than apikey.ErrNotFound is returned and not cached.
func (c *cache) get(ctx context.Context, id string) (*entry, error) {
	now := c.now()
	c.mu.Lock()
	if e := c.entries[id]; e != nil && now.Before(e.expires) {
		c.mu.Unlock()
		return e, nil
	}
	if cl := c.inflight[id]; cl != nil {
		c.mu.Unlock()
		select {
		case <-cl.done:
			return cl.e, cl.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[id] = cl
	c.mu.Unlock()

	// The lookup is shared, so one caller's cancellation must not fail the
	// others waiting on it.
	rec, err := c.store.LookupKey(context.WithoutCancel(ctx), id)
	switch {
	case err == nil:
		cl.e = &entry{rec: rec, found: true, perms: rec.Permissions.Implied().String(), expires: c.now().Add(c.ttl)}
	case errors.Is(err, apikey.ErrNotFound):
		cl.e = &entry{expires: c.now().Add(c.negTTL)}
	default:
		cl.err = err
	}

	c.mu.Lock()
	delete(c.inflight, id)
	if cl.e != nil && !c.stale[id] {
		c.put(id, cl.e)
	}
	delete(c.stale, id)
	c.mu.Unlock()
	close(cl.done)
	return cl.e, cl.err
}

// put stores e, evicting expired entries and then arbitrary ones when the
// cache is full. c.mu must be held.
func (c *cache) put(id string, e *entry) {
	if _, ok := c.entries[id]; !ok && len(c.entries) >= c.max {
		now := c.now()
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[id] = e
}

// invalidate drops id, including the result of a lookup now in flight.
func (c *cache) invalidate(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	if _, ok := c.inflight[id]; ok {
		c.stale[id] = true
	}
	c.mu.Unlock()
}

// replace stores a fresh copy of rec (after a rehash) if id is cached.
func (c *cache) replace(rec apikey.Record) {
	c.mu.Lock()
	if old := c.entries[rec.ID]; old != nil && old.found {
		e := *old
		e.rec = rec
		c.entries[rec.ID] = &e
	}
	c.mu.Unlock()
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
