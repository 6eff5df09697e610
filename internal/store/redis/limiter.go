// Package redis keeps rampart's shared state in Redis so that several instances
// behave as one; this file holds the rate limiter.
package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rampart-security/rampart/internal/ratelimit"
)

// limiterScript decides every check of one request atomically with GCRA on
// the server's clock (redis.call('TIME'), microseconds), so instances with
// skewed clocks agree. It mirrors ratelimit's gcra function.
//
// KEYS[i] is the state (a TAT in microseconds) of check i. ARGV[1] is "1" to
// store the result or "0" to only decide; then three values per check: the
// emission interval in microseconds, the burst, and the cost. The request is
// admitted only if every check admits it; otherwise nothing is written, so a
// rejected request consumes nothing. Each written key expires when its TAT
// passes, the moment its state becomes equivalent to no state.
//
// Returns {allowed, now, tat_1, ..., tat_k} where tat_i is the state check i
// was decided against (0 for none), from which the caller recomputes every
// result with the same arithmetic.
const limiterScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local k = #KEYS
local tats, news = {}, {}
local allowed = 1
for i = 1, k do
  local T = tonumber(ARGV[3*i-1])
  local B = tonumber(ARGV[3*i])
  local n = tonumber(ARGV[3*i+1])
  local tat = nil
  for j = 1, i-1 do
    if KEYS[j] == KEYS[i] then tat = news[j] end
  end
  if tat == nil then tat = tonumber(redis.call('GET', KEYS[i])) or 0 end
  tats[i] = tat
  if tat < now then tat = now end
  local new = tat + n*T
  if now < new - B*T then
    allowed = 0
    news[i] = tat
  else
    news[i] = new
  end
end
if allowed == 1 and ARGV[1] == '1' then
  for i = 1, k do
    redis.call('SET', KEYS[i], string.format('%.0f', news[i]), 'PX', math.ceil((news[i] - now) / 1000))
  end
end
local out = {allowed, now}
for i = 1, k do out[i+2] = tats[i] end
return out
`

// refundScript takes back the cost of an admitted decision (used only when a
// decision spans several Redis Cluster slots and a later slot rejects it).
// KEYS as for limiterScript; ARGV: interval and cost per key. GCRA state is
// additive, so subtracting the cost restores the quota exactly.
const refundScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat then
    local new = tat - tonumber(ARGV[2*i-1]) * tonumber(ARGV[2*i])
    if new <= now then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000))
    end
  end
end
return 1
`

// LimiterScript returns the Lua source of the decision script and its SHA1,
// for comparing the limiter with redis-benchmark running the same EVALSHA.
func LimiterScript() (src, sha string) {
	s := goredis.NewScript(limiterScript)
	return limiterScript, s.Hash()
}

// LimiterOptions configures [NewLimiter].
type LimiterOptions struct {
	// Prefix starts every key, e.g. "rampart:"; default "rampart:".
	Prefix string
}

// Limiter is a ratelimit.Limiter whose state lives in Redis, shared by every
// rampart instance using the same Redis and prefix.
//
// Keys are <prefix>rl:{<subject>}:<rule>, the subject being the Redis Cluster
// hash tag: all rules on one subject share a slot. One decision costs one
// EVALSHA round trip (the script is loaded again on NOSCRIPT) whenever its
// keys share a slot, which is always the case on a single Redis or Sentinel
// deployment and, on a Cluster, for every decision on one subject. On a
// Cluster, a decision whose rules count different subjects (per key and per
// IP, say) cannot be one script: it is decided without writing in each slot
// first, then committed slot by slot; if a concurrent request exhausts a
// later slot in between, the slots already committed are refunded. That never
// admits more than the limits; a rejected request can hold quota for the
// duration of one round trip.
type Limiter struct {
	c       goredis.UniversalClient
	prefix  string
	cluster bool
	decide  *goredis.Script
	refund  *goredis.Script
}

// NewLimiter returns a Redis limiter using c, which may be a *redis.Client,
// a failover client or a *redis.ClusterClient. Size c's pool for the
// expected concurrency (PoolSize).
func NewLimiter(c goredis.UniversalClient, opts LimiterOptions) (*Limiter, error) {
	if c == nil {
		return nil, errors.New("redis limiter: nil client")
	}
	if opts.Prefix == "" {
		opts.Prefix = "rampart:"
	}
	_, cluster := c.(*goredis.ClusterClient)
	return &Limiter{
		c:       c,
		prefix:  opts.Prefix,
		cluster: cluster,
		decide:  goredis.NewScript(limiterScript),
		refund:  goredis.NewScript(refundScript),
	}, nil
}

// Key returns the Redis key holding the state of (rule, subject).
func (l *Limiter) Key(rule, subject string) string {
	if strings.ContainsAny(subject, "{}%") {
		subject = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D").Replace(subject)
	}
	return l.prefix + "rl:{" + subject + "}:" + rule
}

// Allow implements ratelimit.Limiter.
func (l *Limiter) Allow(ctx context.Context, checks []ratelimit.Check, results []ratelimit.Result) (bool, error) {
	if len(results) < len(checks) {
		return false, fmt.Errorf("redis limiter: %d results for %d checks", len(results), len(checks))
	}
	for _, c := range checks {
		if err := c.Validate(); err != nil {
			return false, err
		}
	}
	if len(checks) == 0 {
		return true, nil
	}
	if l.cluster && !oneSubject(checks) {
		return l.allowSplit(ctx, checks, results)
	}
	return l.run(ctx, checks, results, true)
}

func oneSubject(checks []ratelimit.Check) bool {
	for _, c := range checks[1:] {
		if c.Subject != checks[0].Subject {
			return false
		}
	}
	return true
}

// run evaluates the checks with one script call and fills results.
func (l *Limiter) run(ctx context.Context, checks []ratelimit.Check, results []ratelimit.Result, commit bool) (bool, error) {
	keys := make([]string, len(checks))
	args := make([]any, 1, 1+3*len(checks))
	args[0] = "0"
	if commit {
		args[0] = "1"
	}
	for i, c := range checks {
		keys[i] = l.Key(c.Rule, c.Subject)
		args = append(args, intervalMicros(c.Limit), c.Limit.Capacity(), cost(c))
	}
	v, err := l.decide.Run(ctx, l.c, keys, args...).Int64Slice()
	if err != nil {
		return false, fmt.Errorf("redis rate limit: %w", err)
	}
	if len(v) != 2+len(checks) {
		return false, fmt.Errorf("redis rate limit: script returned %d values for %d checks", len(v), len(checks))
	}
	allowed, now := v[0] == 1, v[1]
	for i, c := range checks {
		results[i] = ratelimit.ResultAt(now, v[2+i], intervalMicros(c.Limit), c.Limit, cost(c), time.Microsecond)
	}
	if !allowed { // report the passing checks uncharged, against the stored state
		for i, c := range checks {
			if !results[i].Allowed {
				continue
			}
			stored := v[2+i]
			for j := range i {
				if keys[j] == keys[i] {
					stored = v[2+j]
					break
				}
			}
			results[i] = ratelimit.PeekAt(now, stored, intervalMicros(c.Limit), c.Limit, time.Microsecond)
			results[i].Allowed = true
		}
	}
	return allowed, nil
}

// allowSplit decides a multi-subject decision on a Redis Cluster: a dry run
// per subject, then commits, refunding on a lost race.
func (l *Limiter) allowSplit(ctx context.Context, checks []ratelimit.Check, results []ratelimit.Result) (bool, error) {
	groups := groupBySubject(checks)
	allowed := true
	for _, g := range groups {
		ok, err := l.runGroup(ctx, checks, results, g, false)
		if err != nil {
			return false, err
		}
		allowed = allowed && ok
	}
	if !allowed {
		for _, g := range groups {
			uncharge(checks, results, g)
		}
		return false, nil
	}
	for gi, g := range groups {
		ok, err := l.runGroup(ctx, checks, results, g, true)
		if err == nil && ok {
			continue
		}
		for _, done := range groups[:gi] {
			if rerr := l.refundGroup(ctx, checks, done); rerr != nil && err == nil {
				err = rerr
			}
		}
		for gj, g := range groups {
			if gj != gi { // run already reported group gi uncharged
				uncharge(checks, results, g)
			}
		}
		return false, err
	}
	return true, nil
}

// uncharge turns results of checks that admitted a request as if charged into
// the uncharged state, for a decision that was rejected as a whole. With
// integer ticks this is exact: the charge moved the TAT by cost·interval.
func uncharge(checks []ratelimit.Check, results []ratelimit.Result, g []int) {
	for _, i := range g {
		c := checks[i]
		if r := &results[i]; r.Allowed {
			r.Remaining += cost(c)
			r.ResetAfter -= time.Duration(int64(cost(c))*intervalMicros(c.Limit)) * time.Microsecond
		}
	}
}

func groupBySubject(checks []ratelimit.Check) [][]int {
	var groups [][]int
next:
	for i, c := range checks {
		for gi, g := range groups {
			if checks[g[0]].Subject == c.Subject {
				groups[gi] = append(g, i)
				continue next
			}
		}
		groups = append(groups, []int{i})
	}
	return groups
}

func (l *Limiter) runGroup(ctx context.Context, checks []ratelimit.Check, results []ratelimit.Result, g []int, commit bool) (bool, error) {
	sub := make([]ratelimit.Check, len(g))
	res := make([]ratelimit.Result, len(g))
	for i, ci := range g {
		sub[i] = checks[ci]
	}
	ok, err := l.run(ctx, sub, res, commit)
	for i, ci := range g {
		results[ci] = res[i]
	}
	return ok, err
}

func (l *Limiter) refundGroup(ctx context.Context, checks []ratelimit.Check, g []int) error {
	keys := make([]string, len(g))
	args := make([]any, 0, 2*len(g))
	for i, ci := range g {
		c := checks[ci]
		keys[i] = l.Key(c.Rule, c.Subject)
		args = append(args, intervalMicros(c.Limit), cost(c))
	}
	if err := l.refund.Run(ctx, l.c, keys, args...).Err(); err != nil {
		return fmt.Errorf("redis rate limit refund: %w", err)
	}
	return nil
}

// intervalMicros is the emission interval in whole microseconds (rounded
// up, so the shared limit never admits faster than configured).
func intervalMicros(l ratelimit.Limit) int64 {
	return int64((l.Interval() + time.Microsecond - 1) / time.Microsecond)
}

func cost(c ratelimit.Check) int {
	if c.Cost == 0 {
		return 1
	}
	return c.Cost
}
