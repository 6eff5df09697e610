// Package wsredis backs package wsgate with Redis so several rampart
// instances behave as one: a ticket works exactly once on any instance
// (SET PX, redeemed by GETDEL), the connection caps count every instance's
// sockets (per-instance counts kept alive by heartbeats, so a crashed
// instance's connections stop counting when its heartbeat key expires), and
// a revocation published on one instance closes the principal's sockets on
// all of them (pub/sub).
//
// Every key starts with the configured prefix; the registry's keys share
// the Redis Cluster hash tag {wsconns}.
package wsredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rampart-security/rampart/internal/wsgate"
)

const defaultPrefix = "rampart:"

// TicketsOptions configures [NewTickets].
type TicketsOptions struct {
	// Prefix starts every key; default "rampart:".
	Prefix string
}

// Tickets is a wsgate.TicketStore in Redis. Tickets are stored under
// <prefix>wst:<hash of the ticket> by SET PX NX and redeemed with GETDEL
// (Redis 6.2 or later), so of any number of concurrent redemptions on any instances
// exactly one succeeds.
type Tickets struct {
	c      goredis.UniversalClient
	prefix string
}

// NewTickets returns a ticket store using c.
func NewTickets(c goredis.UniversalClient, o TicketsOptions) (*Tickets, error) {
	if c == nil {
		return nil, errors.New("redis tickets: nil client")
	}
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	return &Tickets{c: c, prefix: o.Prefix}, nil
}

func (t *Tickets) key(k string) string { return t.prefix + "wst:" + k }

// Issue implements wsgate.TicketStore.
func (t *Tickets) Issue(ctx context.Context, key string, g wsgate.Grant, ttl time.Duration) error {
	b, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("encode grant: %w", err)
	}
	ms := max(ttl.Milliseconds(), 1)
	err = t.c.Do(ctx, "SET", t.key(key), b, "PX", ms, "NX").Err()
	switch {
	case errors.Is(err, goredis.Nil):
		return errors.New("redis issue ticket: key already exists")
	case err != nil:
		return fmt.Errorf("redis issue ticket: %w", err)
	}
	return nil
}

// Redeem implements wsgate.TicketStore.
func (t *Tickets) Redeem(ctx context.Context, key string) (wsgate.Grant, error) {
	b, err := t.c.GetDel(ctx, t.key(key)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return wsgate.Grant{}, wsgate.ErrTicketInvalid
	}
	if err != nil {
		return wsgate.Grant{}, fmt.Errorf("redis redeem ticket: %w", err)
	}
	var g wsgate.Grant
	if err := json.Unmarshal(b, &g); err != nil {
		return wsgate.Grant{}, fmt.Errorf("decode grant: %w", err)
	}
	return g, nil
}

// acquireScript counts one connection if both caps allow it.
//
// KEYS[1] total hash, KEYS[2] principal hash (field: instance, value: open
// connections), KEYS[3] this instance's heartbeat key. ARGV: instance,
// per-principal cap, total cap (0: none), heartbeat key prefix, heartbeat
// TTL in ms. Fields of instances whose heartbeat key is gone are deleted
// and not counted. Returns 0 (counted), 1 (principal cap), 2 (total cap).
const acquireScript = `
redis.call('SET', KEYS[3], '1', 'PX', ARGV[5])
local function live(h)
  local sum = 0
  local kv = redis.call('HGETALL', h)
  for i = 1, #kv, 2 do
    if kv[i] == ARGV[1] or redis.call('EXISTS', ARGV[4] .. kv[i]) == 1 then
      sum = sum + tonumber(kv[i+1])
    else
      redis.call('HDEL', h, kv[i])
    end
  end
  return sum
end
local per, total = tonumber(ARGV[2]), tonumber(ARGV[3])
if per > 0 and live(KEYS[2]) >= per then return 1 end
if total > 0 and live(KEYS[1]) >= total then return 2 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 0
`

// releaseScript uncounts one connection. KEYS[1] total, KEYS[2] principal;
// ARGV[1] instance.
const releaseScript = `
for i = 1, 2 do
  if redis.call('HINCRBY', KEYS[i], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[i], ARGV[1])
  end
end
return 0
`

// RegistryOptions configures [NewRegistry].
type RegistryOptions struct {
	// Prefix starts every key; default "rampart:". Instances that share
	// caps use the same prefix.
	Prefix string
	// Instance names this instance; default random. Two live instances
	// must not share a name.
	Instance string
	// HeartbeatInterval is how often this instance rewrites its counts
	// and renews its heartbeat key; default 5 s.
	HeartbeatInterval time.Duration
	// TTL is how long after its last heartbeat a silent (crashed)
	// instance's connections stop counting; default 3 × HeartbeatInterval.
	TTL time.Duration
	// NewTicker makes the heartbeat ticker; default wsgate.NewTimeTicker.
	NewTicker func(time.Duration) wsgate.Ticker
	// Log receives heartbeat failures; default slog.Default().
	Log *slog.Logger
}

// Registry is a wsgate.Registry whose caps hold across every instance using
// the same Redis and prefix.
//
// Each instance keeps its own count per principal and in total as fields
// of shared hashes, and a heartbeat key that expires after TTL. Acquire
// sums the fields of live instances in one Lua script (deleting those of
// dead ones), so the caps are exact while instances are alive and a
// crashed instance's connections stop counting once its heartbeat key
// expires. Every heartbeat rewrites this instance's counts from its own
// bookkeeping, which also repairs a release lost while Redis was down.
type Registry struct {
	c        goredis.UniversalClient
	prefix   string
	instance string
	ttl      time.Duration
	log      *slog.Logger
	acquire  *goredis.Script
	release  *goredis.Script
	ticker   wsgate.Ticker
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once

	mu    sync.Mutex // held across Redis calls so heartbeats see a consistent count
	local map[string]int
	total int
}

// NewRegistry writes a first heartbeat (failing if Redis is unreachable)
// and starts the heartbeat loop; Close stops it.
func NewRegistry(c goredis.UniversalClient, o RegistryOptions) (*Registry, error) {
	if c == nil {
		return nil, errors.New("redis registry: nil client")
	}
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	if o.Instance == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("redis registry: instance name: %w", err)
		}
		o.Instance = hex.EncodeToString(b[:])
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 5 * time.Second
	}
	if o.TTL == 0 {
		o.TTL = 3 * o.HeartbeatInterval
	}
	switch {
	case o.HeartbeatInterval < 10*time.Millisecond:
		return nil, fmt.Errorf("redis registry: heartbeat interval %s under 10ms", o.HeartbeatInterval)
	case o.TTL <= o.HeartbeatInterval:
		return nil, fmt.Errorf("redis registry: ttl %s must exceed the heartbeat interval %s", o.TTL, o.HeartbeatInterval)
	case strings.ContainsAny(o.Instance, "{}"):
		return nil, fmt.Errorf("redis registry: instance name %q contains braces", o.Instance)
	}
	if o.NewTicker == nil {
		o.NewTicker = wsgate.NewTimeTicker
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	r := &Registry{
		c: c, prefix: o.Prefix, instance: o.Instance, ttl: o.TTL, log: o.Log,
		acquire: goredis.NewScript(acquireScript), release: goredis.NewScript(releaseScript),
		stop: make(chan struct{}), done: make(chan struct{}), local: make(map[string]int),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Heartbeat(ctx); err != nil {
		return nil, err
	}
	r.ticker = o.NewTicker(o.HeartbeatInterval)
	go r.loop()
	return r, nil
}

// Instance returns this instance's name.
func (r *Registry) Instance() string { return r.instance }

func (r *Registry) totalKey() string             { return r.prefix + "ws:{wsconns}:total" }
func (r *Registry) principalKey(p string) string { return r.prefix + "ws:{wsconns}:p:" + p }
func (r *Registry) instPrefix() string           { return r.prefix + "ws:{wsconns}:inst:" }

// Acquire implements wsgate.Registry.
func (r *Registry) Acquire(ctx context.Context, s wsgate.Slot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	per, total := max(s.MaxPerPrincipal, 0), max(s.MaxTotal, 0)
	res, err := r.acquire.Run(ctx, r.c,
		[]string{r.totalKey(), r.principalKey(s.Principal), r.instPrefix() + r.instance},
		r.instance, per, total, r.instPrefix(), r.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("redis registry acquire: %w", err)
	}
	switch res {
	case 0:
		r.local[s.Principal]++
		r.total++
		return nil
	case 1:
		return wsgate.ErrPrincipalLimit
	default:
		return wsgate.ErrGlobalLimit
	}
}

// Release implements wsgate.Registry. The local count drops even when Redis
// fails; the next heartbeat writes the right number.
func (r *Registry) Release(ctx context.Context, s wsgate.Slot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.local[s.Principal] <= 0 {
		return nil
	}
	r.local[s.Principal]-- // kept at 0 until a heartbeat has written it
	r.total--
	err := r.release.Run(ctx, r.c, []string{r.totalKey(), r.principalKey(s.Principal)}, r.instance).Err()
	if err != nil {
		return fmt.Errorf("redis registry release: %w", err)
	}
	return nil
}

// Heartbeat renews this instance's heartbeat key and rewrites its counts.
// The loop calls it every HeartbeatInterval.
func (r *Registry) Heartbeat(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ttl := r.ttl
	_, err := r.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, r.instPrefix()+r.instance, "1", ttl)
		writeCount(ctx, p, r.totalKey(), r.instance, r.total, ttl)
		for principal, n := range r.local {
			writeCount(ctx, p, r.principalKey(principal), r.instance, n, ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis registry heartbeat: %w", err)
	}
	for principal, n := range r.local {
		if n <= 0 {
			delete(r.local, principal)
		}
	}
	return nil
}

func writeCount(ctx context.Context, p goredis.Pipeliner, key, field string, n int, ttl time.Duration) {
	if n <= 0 {
		p.HDel(ctx, key, field)
		return
	}
	p.HSet(ctx, key, field, strconv.Itoa(n))
	p.PExpire(ctx, key, ttl)
}

func (r *Registry) loop() {
	defer close(r.done)
	defer r.ticker.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-r.ticker.C():
			ctx, cancel := context.WithTimeout(context.Background(), r.ttl)
			if err := r.Heartbeat(ctx); err != nil {
				r.log.Error("websocket registry heartbeat failed", "error", err, "instance", r.instance)
			}
			cancel()
		}
	}
}

// Close stops the heartbeats and removes this instance's counts, so its
// connections stop counting at once. Call it after the gate has shut down.
func (r *Registry) Close(ctx context.Context) error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, r.instPrefix()+r.instance)
		p.HDel(ctx, r.totalKey(), r.instance)
		for principal := range r.local {
			p.HDel(ctx, r.principalKey(principal), r.instance)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis registry close: %w", err)
	}
	return nil
}

// RevocationsOptions configures [NewRevocations].
type RevocationsOptions struct {
	// Prefix starts the channel name; default "rampart:".
	Prefix string
	// Log receives undecodable messages; default slog.Default().
	Log *slog.Logger
}

// Revocations is wsgate.Revocations over Redis pub/sub on the channel
// <prefix>ws:revoke. Messages are "k:<key id>" or "s:<session id>".
type Revocations struct {
	c       goredis.UniversalClient
	channel string
	log     *slog.Logger
}

// NewRevocations returns the fan-out using c.
func NewRevocations(c goredis.UniversalClient, o RevocationsOptions) (*Revocations, error) {
	if c == nil {
		return nil, errors.New("redis revocations: nil client")
	}
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Revocations{c: c, channel: o.Prefix + "ws:revoke", log: o.Log}, nil
}

// Publish implements wsgate.Revocations.
func (v *Revocations) Publish(ctx context.Context, r wsgate.Revocation) error {
	var msgs []string
	if r.KeyID != "" {
		msgs = append(msgs, "k:"+r.KeyID)
	}
	if r.SessionID != "" {
		msgs = append(msgs, "s:"+r.SessionID)
	}
	for _, m := range msgs {
		if err := v.c.Publish(ctx, v.channel, m).Err(); err != nil {
			return fmt.Errorf("redis publish revocation: %w", err)
		}
	}
	return nil
}

// Subscribe implements wsgate.Revocations. go-redis resubscribes after a
// lost connection; revocations published while it was down are lost, which
// is why the key's authentication (not this fan-out) refuses new sockets.
func (v *Revocations) Subscribe(ctx context.Context, deliver func(wsgate.Revocation)) (func(), error) {
	ps := v.c.Subscribe(ctx, v.channel)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("redis subscribe %s: %w", v.channel, err)
	}
	ch := ps.Channel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			kind, id, ok := strings.Cut(m.Payload, ":")
			switch {
			case ok && kind == "k" && id != "":
				deliver(wsgate.Revocation{KeyID: id})
			case ok && kind == "s" && id != "":
				deliver(wsgate.Revocation{SessionID: id})
			default:
				v.log.Warn("unknown websocket revocation message", "channel", v.channel)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = ps.Close()
			<-done
		})
	}, nil
}
