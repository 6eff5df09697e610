package ratelimit

import (
	"context"
	"hash/maphash"
	"math/bits"
	"slices"
	"sync"
	"time"
)

// MemoryOptions configures a [Memory] limiter. The zero value is usable.
type MemoryOptions struct {
	// Now is the clock; default time.Now. Only differences between its
	// readings matter, and time.Now's monotonic reading is used.
	Now func() time.Time
	// Shards is the number of independently locked maps, rounded up to a
	// power of two; default 64.
	Shards int
	// MaxSubjects bounds the number of (rule, subject) states kept; default
	// 1,000,000 (about 100 MB with typical keys). When a shard is full, idle
	// state is dropped first, then the state closest to idle.
	MaxSubjects int
	// SweepEvery is how often a shard that is written to drops idle state;
	// default one minute.
	SweepEvery time.Duration
}

// Memory is an in-process [Limiter]: sharded maps of TATs, each shard
// under its own mutex. State whose TAT has passed is idle (equivalent to no
// state) and is dropped by periodic sweeps of the shard being written, so
// memory follows the active subjects and never exceeds MaxSubjects entries.
type Memory struct {
	now        func() time.Time
	base       time.Time
	seed       maphash.Seed
	ruleSeed   maphash.Seed
	shift      uint
	perShard   int
	sweepEvery int64
	shards     []memShard
}

// memKey is a keyed 64-bit hash of (rule, subject). Storing the hash
// instead of the strings keeps an entry at 16 bytes and a decision at one
// cheap map operation; with per-process random seeds, an accidental
// collision among a million live states has a probability near 3e-8, and
// its effect would be two subjects sharing one quota.
type memKey uint64

type memShard struct {
	mu        sync.Mutex
	m         map[memKey]int64 // TAT in nanoseconds since Memory.base
	nextSweep int64
	_         [40]byte // keep shards on separate cache lines
}

// NewMemory returns a memory limiter.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Shards <= 0 {
		opts.Shards = 64
	}
	if opts.MaxSubjects <= 0 {
		opts.MaxSubjects = 1_000_000
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = time.Minute
	}
	n := 1 << bits.Len(uint(opts.Shards-1))
	m := &Memory{
		now:        opts.Now,
		base:       opts.Now(),
		seed:       maphash.MakeSeed(),
		ruleSeed:   maphash.MakeSeed(),
		shift:      uint(64 - bits.Len(uint(n-1))),
		perShard:   max(1, opts.MaxSubjects/n),
		sweepEvery: int64(opts.SweepEvery),
		shards:     make([]memShard, n),
	}
	for i := range m.shards {
		m.shards[i].m = make(map[memKey]int64)
	}
	return m
}

func (m *Memory) key(c *Check) (memKey, int) {
	h := maphash.String(m.seed, c.Subject) ^ maphash.String(m.ruleSeed, c.Rule)*0x9e3779b97f4a7c15
	if m.shift == 64 {
		return memKey(h), 0
	}
	return memKey(h), int(h >> m.shift)
}

// Allow implements [Limiter]. It locks the shards of all checks (in index
// order, so concurrent decisions cannot deadlock), decides every check, and
// stores the new TATs only when all admit the request.
func (m *Memory) Allow(_ context.Context, checks []Check, results []Result) (bool, error) {
	if err := validateChecks(checks, results); err != nil {
		return false, err
	}
	now := int64(m.now().Sub(m.base))
	if len(checks) == 1 {
		c := &checks[0]
		k, i := m.key(c)
		s := &m.shards[i]
		s.mu.Lock()
		ok, tat := m.decide(s, k, c, now, &results[0])
		if ok {
			m.store(s, k, tat, now)
		}
		s.mu.Unlock()
		return ok, nil
	}

	var ibuf, lbuf [8]int
	var kbuf [8]memKey
	var tbuf [8]int64
	idx, keys := ibuf[:0], kbuf[:0]
	for i := range checks {
		k, si := m.key(&checks[i])
		idx, keys = append(idx, si), append(keys, k)
	}
	locks := append(lbuf[:0], idx...)
	slices.Sort(locks)
	locks = slices.Compact(locks)
	for _, i := range locks {
		m.shards[i].mu.Lock()
	}
	allowed := true
	tats := tbuf[:0]
	for i := range checks {
		c := &checks[i]
		k := keys[i]
		tat := m.shards[idx[i]].m[k]
		for j := range i { // the same state twice in one decision
			if keys[j] == k {
				tat = tats[j]
			}
		}
		ok, next, rem, reset, retry := gcra(now, tat, int64(c.Limit.Interval()), int64(c.Limit.Capacity()), int64(c.cost()))
		results[i] = Result{Allowed: ok, Limit: c.Limit, Remaining: int(rem), ResetAfter: time.Duration(reset), RetryAfter: time.Duration(retry)}
		tats = append(tats, next)
		allowed = allowed && ok
	}
	for i := range checks {
		c := &checks[i]
		k := keys[i]
		s := &m.shards[idx[i]]
		if allowed {
			m.store(s, k, tats[i], now)
			continue
		}
		if results[i].Allowed { // admitted by this check but not charged
			tat := s.m[k]
			results[i].Remaining, results[i].ResetAfter = peek(now, tat, c.Limit)
		}
	}
	for _, i := range slices.Backward(locks) {
		m.shards[i].mu.Unlock()
	}
	return allowed, nil
}

func (m *Memory) decide(s *memShard, k memKey, c *Check, now int64, r *Result) (bool, int64) {
	tat := s.m[k]
	ok, next, rem, reset, retry := gcra(now, tat, int64(c.Limit.Interval()), int64(c.Limit.Capacity()), int64(c.cost()))
	*r = Result{Allowed: ok, Limit: c.Limit, Remaining: int(rem), ResetAfter: time.Duration(reset), RetryAfter: time.Duration(retry)}
	return ok, next
}

// peek is the remaining quota and reset delay of an uncharged state.
func peek(now, tat int64, l Limit) (int, time.Duration) {
	tat = max(tat, now)
	t := int64(l.Interval())
	rem := max(0, (now+int64(l.Capacity())*t-tat)/t)
	return int(rem), time.Duration(tat - now)
}

// store saves a TAT, making room in a full shard first. Called with s.mu held.
func (m *Memory) store(s *memShard, k memKey, tat, now int64) {
	if _, ok := s.m[k]; !ok {
		if now >= s.nextSweep {
			for key, t := range s.m {
				if t <= now {
					delete(s.m, key)
				}
			}
			s.nextSweep = now + m.sweepEvery
		}
		if len(s.m) >= m.perShard {
			evictOne(s.m, now)
		}
	}
	s.m[k] = tat
}

// evictOne drops an idle state if it finds one among a few random entries,
// otherwise the sampled one nearest to idle (the least quota given away).
func evictOne(m map[memKey]int64, now int64) {
	var victim memKey
	var best int64
	n := 0
	for key, t := range m {
		if t <= now {
			delete(m, key)
			return
		}
		if n == 0 || t < best {
			victim, best = key, t
		}
		if n++; n == 8 {
			break
		}
	}
	delete(m, victim)
}

// Len is the number of (rule, subject) states held, idle ones included until
// they are swept.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
