package app

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/rampart-security/rampart/internal/admin"
	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/audit"
	"github.com/rampart-security/rampart/internal/auth"
	"github.com/rampart-security/rampart/internal/config"
	"github.com/rampart-security/rampart/internal/identity"
	"github.com/rampart-security/rampart/internal/metrics"
	"github.com/rampart-security/rampart/internal/ratelimit"
	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/route"
	"github.com/rampart-security/rampart/internal/secrets"
	"github.com/rampart-security/rampart/internal/store"
	redisstore "github.com/rampart-security/rampart/internal/store/redis"
	"github.com/rampart-security/rampart/internal/wsgate"
	"github.com/rampart-security/rampart/internal/wsgate/wsredis"
)

// Secret names, as in the secrets section of the config.
const (
	secretPepper   = "api_key_pepper"
	secretSeal     = "audit_seal_key"
	secretAuditEnc = "audit_encryption_key"
)

// stack is the set of feature components built from the config: metrics,
// secrets, the key store and authentication, rate limits, the audit log and
// the WebSocket gate. Each is nil when the config does not use it.
type stack struct {
	cfg config.Config
	log *slog.Logger
	now func() time.Time

	reg       *prometheus.Registry
	metrics   *metrics.Metrics
	secrets   *secrets.Manager
	store     store.Store
	peppers   *apikey.Keyring
	auth      *auth.Authenticator
	keys      *admin.Manager
	redis     goredis.UniversalClient
	limiter   ratelimit.Limiter
	rules     []config.LimitRule
	preAuth   []ratelimit.Rule
	audit     *audit.Logger
	agg       *audit.Aggregator
	tickets   *wsgate.Tickets
	gate      *wsgate.Gate
	wsReg     *wsredis.Registry
	people    *identity.Service
	auditFile *audit.FileSink

	closers []func(context.Context) error // run in reverse order at shutdown
}

// ring is the keyring of a configured secret, nil when it is not configured.
func (s *stack) ring(name string) *secrets.Keyring {
	if s.secrets == nil {
		return nil
	}
	return s.secrets.Keyring(name)
}

func (s *stack) onClose(f func(context.Context) error) { s.closers = append(s.closers, f) }

// close releases everything in reverse order of construction.
func (s *stack) close(ctx context.Context) error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// buildStack opens every component the config asks for. On error whatever
// was opened is closed again.
func buildStack(ctx context.Context, cfg config.Config, log *slog.Logger, now func() time.Time) (_ *stack, err error) {
	s := &stack{cfg: cfg, log: log, now: now}
	defer func() {
		if err != nil {
			_ = s.close(context.Background())
		}
	}()
	if err := s.buildMetrics(); err != nil {
		return nil, err
	}
	if err := s.buildSecrets(ctx); err != nil {
		return nil, err
	}
	if err := s.buildAudit(ctx); err != nil {
		return nil, err
	}
	if err := s.buildKeys(ctx); err != nil {
		return nil, err
	}
	if err := s.buildLimits(); err != nil {
		return nil, err
	}
	if err := s.buildWebSocket(); err != nil {
		return nil, err
	}
	if err := s.buildIdentity(); err != nil {
		return nil, err
	}
	s.record(ctx, audit.ConfigEvent(nil, config.Flatten(cfg), nil))
	return s, nil
}

func (s *stack) buildMetrics() error {
	s.reg = prometheus.NewRegistry()
	if err := metrics.RegisterRuntime(s.reg); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	m, err := metrics.New(s.reg, metrics.WithClock(s.now), metrics.WithSlowRequestThreshold(s.cfg.Metrics.SlowThreshold))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	s.metrics = m
	return nil
}

// devSecrets fills every secret the config needs but does not name with a
// file generated once in state_dir/secrets. Development mode only: config
// validation refuses the missing references in production.
func devSecrets(cfg *config.Config, log *slog.Logger) error {
	if cfg.Production() {
		return nil
	}
	need := map[string]*string{}
	if cfg.Secrets.APIKeyPepper == "" {
		need[secretPepper] = &cfg.Secrets.APIKeyPepper
	}
	if cfg.Audit.Enabled && cfg.Secrets.AuditSealKey == "" {
		need[secretSeal] = &cfg.Secrets.AuditSealKey
	}
	if cfg.Audit.Enabled && cfg.Audit.Encrypt && cfg.Secrets.AuditEncryptionKey == "" {
		need[secretAuditEnc] = &cfg.Secrets.AuditEncryptionKey
	}
	if cfg.Identity.Enabled && cfg.Secrets.JWTKey == "" {
		need[secretJWT] = &cfg.Secrets.JWTKey
	}
	if cfg.Identity.Enabled && cfg.Secrets.TOTPKey == "" {
		need[secretTOTP] = &cfg.Secrets.TOTPKey
	}
	if len(need) == 0 {
		return nil
	}
	dir := filepath.Join(cfg.StateDir, "secrets")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("development secrets: %w", err)
	}
	for name, ref := range need {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			b := make([]byte, 32)
			if _, err := crand.Read(b); err != nil {
				return err
			}
			if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
				return fmt.Errorf("development secrets: %w", err)
			}
			log.Warn("generated a development secret", "secret", name, "file", path)
		}
		*ref = "file:" + path
	}
	return nil
}

func (s *stack) buildSecrets(ctx context.Context) error {
	refs := s.cfg.SecretRefs()
	if len(refs) == 0 {
		return nil
	}
	specs := make([]secrets.Spec, 0, len(refs))
	for name, ref := range refs {
		specs = append(specs, secrets.Spec{Name: name, Ref: ref})
	}
	opts := secretOptions(s.cfg, s.log)
	opts.Interval, opts.Registerer = s.cfg.Secrets.RefreshInterval, s.reg
	opts.OnChange, opts.OnRotate = s.secretChanged, s.secretRotated
	m, err := secrets.Open(ctx, specs, opts)
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	s.secrets = m
	return nil
}

// secretChanged runs after a secret's keyring changed: a new current
// version, or a previous one added or dropped (the end of an overlap). The
// keyrings copied out of it follow at once.
func (s *stack) secretChanged(name string) {
	if name == secretPepper && s.peppers != nil {
		if peppers, err := pepperList(s.secrets.Keyring(secretPepper)); err != nil {
			s.log.Error("pepper rotation refused", "error", err)
		} else if err := s.peppers.Replace(peppers[0], peppers[1:]...); err != nil {
			s.log.Error("pepper rotation refused", "error", err)
		}
	}
	if name == secretJWT && s.people != nil {
		if err := s.people.SetKeys(identityKeys(s.ring(secretJWT))); err != nil {
			s.log.Error("JWT key rotation refused", "error", err)
		}
	}
	if (name == secretSeal || name == secretAuditEnc) && s.auditFile != nil {
		seal, err := auditKeyring(secretSeal, s.ring(secretSeal))
		if err == nil {
			var enc audit.Keyring
			if enc, err = auditKeyring(secretAuditEnc, s.ring(secretAuditEnc)); err == nil {
				err = s.auditFile.SetKeys(seal, enc)
			}
		}
		if err != nil {
			s.log.Error("audit key rotation refused", "error", err)
		}
	}
}

// secretRotated runs after a provider returned a new current version
// (secretChanged has already updated the copies): it is logged and audited
// by version ID; the value never is.
func (s *stack) secretRotated(name, versionID string) {
	s.log.Info("secret rotated", "secret", name, "version", versionID)
	s.record(context.Background(), audit.Event{Type: audit.TypeSecretRotated, Outcome: audit.OutcomeOK,
		Details: map[string]any{"secret": name, "version": versionID}})
}

// pepperList turns a secret's versions (current first) into peppers.
func pepperList(ring *secrets.Keyring) ([]apikey.Pepper, error) {
	if ring == nil {
		return nil, errors.New("no api_key_pepper secret")
	}
	var out []apikey.Pepper
	for _, v := range ring.All() {
		out = append(out, apikey.Pepper{Version: apikey.VersionFromID(v.ID), Secret: v.Value.Bytes()})
	}
	if len(out) == 0 {
		return nil, errors.New("api_key_pepper has no value")
	}
	return out, nil
}

// auditKeyring turns a secret's versions into an audit keyring.
func auditKeyring(name string, ring *secrets.Keyring) (audit.Keyring, error) {
	var k audit.Keyring
	if ring == nil {
		return k, nil
	}
	for i, v := range ring.All() {
		key, err := audit.KeyFromSecret(v.ID, v.Value.Bytes())
		if err != nil {
			return k, fmt.Errorf("secrets.%s: %w", name, err)
		}
		if i == 0 {
			k.Current = key
		} else {
			k.Previous = append(k.Previous, key)
		}
	}
	return k, nil
}

// AuditKeys are the audit keys the config's secrets give, derived exactly
// as serve derives them: what `rampart audit -c` uses to verify and export.
func AuditKeys(ctx context.Context, cfg config.Config) (audit.Keys, error) {
	devAuditSecretRefs(&cfg)
	refs := cfg.SecretRefs()
	var specs []secrets.Spec
	for _, name := range []string{secretSeal, secretAuditEnc} {
		if ref, ok := refs[name]; ok {
			specs = append(specs, secrets.Spec{Name: name, Ref: ref})
		}
	}
	if len(specs) == 0 {
		return audit.Keys{}, nil
	}
	m, err := secrets.Open(ctx, specs, secretOptions(cfg, slog.New(slog.DiscardHandler)))
	if err != nil {
		return audit.Keys{}, err
	}
	seal, err := auditKeyring(secretSeal, m.Keyring(secretSeal))
	if err != nil {
		return audit.Keys{}, err
	}
	enc, err := auditKeyring(secretAuditEnc, m.Keyring(secretAuditEnc))
	return audit.Keys{Seal: seal, Encryption: enc}, err
}

// devAuditSecretRefs points the audit secrets a development config leaves
// unset at the files serve generated in state_dir/secrets, when they exist.
// It never creates one: reading a log must not invent its key.
func devAuditSecretRefs(cfg *config.Config) {
	if cfg.Production() {
		return
	}
	for name, ref := range map[string]*string{secretSeal: &cfg.Secrets.AuditSealKey, secretAuditEnc: &cfg.Secrets.AuditEncryptionKey} {
		path := filepath.Join(cfg.StateDir, "secrets", name)
		if _, err := os.Stat(path); *ref == "" && err == nil {
			*ref = "file:" + path
		}
	}
}

func (s *stack) buildAudit(ctx context.Context) error {
	a := s.cfg.Audit
	if !a.Enabled {
		return nil
	}
	seal, err := auditKeyring(secretSeal, s.ring(secretSeal))
	if err != nil {
		return err
	}
	enc, err := auditKeyring(secretAuditEnc, s.ring(secretAuditEnc))
	if err != nil {
		return err
	}
	file, err := audit.OpenFile(audit.FileOptions{
		Dir:            s.cfg.AuditDir(),
		SealKeys:       seal,
		Encrypt:        a.Encrypt,
		EncryptionKeys: enc,
		RetentionDays:  a.RetentionDays,
		Now:            s.now,
		Log:            s.log,
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	s.auditFile = file
	sinks := []audit.Sink{file}
	if a.Stdout {
		sinks = append(sinks, audit.NewStreamSink(os.Stdout))
	}
	if a.PostgresURL != "" {
		host, _ := os.Hostname()
		pg, err := audit.OpenPostgres(ctx, audit.PostgresOptions{URL: a.PostgresURL, Stream: host})
		if err != nil {
			_ = file.Close()
			return fmt.Errorf("audit.postgres_url: %w", err)
		}
		sinks = append(sinks, pg)
	}
	sink := sinks[0]
	if len(sinks) > 1 {
		sink = audit.Tee(sinks...)
	}
	l, err := audit.New(sink, audit.Options{Now: s.now, Log: s.log})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	s.audit = l
	s.onClose(l.Close)
	s.metrics.AuditStatsFunc(func() metrics.AuditStats {
		st := l.Stats()
		return metrics.AuditStats{Queued: st.Queued, Capacity: st.Capacity, Written: st.Written,
			Failed: st.Failed, Rejected: st.Rejected, Groups: st.Groups}
	})
	s.agg = audit.NewAggregator(l, s.now, 0)
	s.onClose(s.agg.Close)
	return nil
}

// record enqueues an audit event when the log is on. The request path
// never waits on it; a full queue is logged, not fatal.
func (s *stack) record(ctx context.Context, ev audit.Event) {
	if s.audit == nil {
		return
	}
	if err := s.audit.Enqueue(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("audit event dropped", "event_type", ev.Type, "error", err)
	}
}

func (s *stack) buildKeys(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	st, err := store.Open(ctx, s.cfg.StoreURL())
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.store = st
	s.onClose(func(context.Context) error { return st.Close() })
	if s.ring(secretPepper) == nil {
		return nil // no pepper: no API keys (validation refuses key routes without one in production)
	}
	peppers, err := pepperList(s.secrets.Keyring(secretPepper))
	if err != nil {
		return err
	}
	if s.peppers, err = apikey.NewKeyring(peppers[0], peppers[1:]...); err != nil {
		return fmt.Errorf("secrets.api_key_pepper: %w", err)
	}
	s.auth, err = auth.New(auth.Options{
		Keys:          st,
		Keyring:       s.peppers,
		Policy:        routePolicy,
		Logger:        s.log,
		Now:           s.now,
		CacheTTL:      s.cfg.Auth.CacheTTL,
		UsageInterval: s.cfg.Auth.UsageInterval,
		OnAuth:        s.onAuth,
	})
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	s.onClose(s.auth.Close)
	s.keys, err = admin.NewManager(admin.ManagerOptions{
		Store: st, Keyring: s.peppers, Now: s.now, OnChange: s.keyChanged, Env: keyEnv(s.cfg),
	})
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return nil
}

// routePolicy derives a request's authentication policy from its route.
// WebSocket routes authenticate by ticket inside the gate.
func routePolicy(r *http.Request) auth.Policy {
	rt := routeFrom(r.Context())
	if rt == nil || rt.WebSocket {
		return auth.Policy{Auth: auth.AuthNone}
	}
	switch rt.Auth {
	case route.AuthAPIKey:
	case route.AuthAny: // a person's token is checked by userAuth
		if !carriesAPIKey(r) {
			return auth.Policy{Auth: auth.AuthNone}
		}
	default:
		return auth.Policy{Auth: auth.AuthNone}
	}
	req, err := auth.ParseRequirement(rt.Permission)
	if err != nil { // the route table validated it; fail closed anyway
		req = auth.PermissionAdmin
	}
	return auth.Policy{Auth: auth.AuthAPIKey, Permission: req}
}

// onAuth feeds every authentication decision to metrics and audit.
func (s *stack) onAuth(ctx context.Context, ev auth.Event) {
	info := reqinfo.From(ctx)
	typ := audit.TypeAuthSuccess
	switch ev.Outcome {
	case auth.OutcomeOK:
	case auth.OutcomeForbidden:
		typ = audit.TypeAuthzFailure
		s.metrics.AuthFailure(ev.Outcome)
	default:
		typ = audit.TypeAuthFailure
		s.metrics.AuthFailure(ev.Outcome)
	}
	e := audit.NewEvent(typ, info)
	e.Outcome = ev.Outcome
	if ev.KeyID != "" {
		e.User = ev.KeyID
	}
	if ev.Deprecated {
		e.Details = map[string]any{"deprecated_key": true}
	}
	s.record(ctx, e)
}

// keyChanged runs after a key is created, revoked or rotated through the
// admin API: this instance forgets the key at once (others within
// auth.cache_ttl), its sockets close, and the change is audited.
func (s *stack) keyChanged(ctx context.Context, c admin.Change) {
	s.auth.Invalidate(c.KeyID)
	if s.redis != nil && c.Action != "create" {
		if err := s.redis.Publish(context.WithoutCancel(ctx), keyInvalidations, c.KeyID).Err(); err != nil {
			s.log.Warn("key change not published; other instances see it within auth.cache_ttl", "key_id", c.KeyID, "error", err)
		}
	}
	typ := audit.TypeKeyCreated
	switch c.Action {
	case "revoke":
		typ = audit.TypeKeyRevoked
		if s.gate != nil {
			s.gate.CloseKey(c.KeyID)
		}
	case "rotate":
		typ = audit.TypeKeyRotated
	}
	details := map[string]any{"key_id": c.KeyID}
	if c.NewKeyID != "" {
		details["new_key_id"] = c.NewKeyID
	}
	s.record(ctx, audit.Event{Type: typ, User: c.Actor, Outcome: audit.OutcomeOK, Details: details})
}

// keyInvalidations is the Redis channel on which a revoked or rotated key's
// ID is published, so every instance drops it from its cache at once
// rather than within auth.cache_ttl.
const keyInvalidations = "rampart:keys:invalidate"

// followInvalidations drops keys other instances revoked or rotated until
// ctx ends; go-redis resubscribes by itself after a connection loss.
func (s *stack) followInvalidations(ctx context.Context) {
	sub := s.redis.Subscribe(ctx, keyInvalidations)
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			s.auth.Invalidate(msg.Payload)
		}
	}
}

func (s *stack) buildLimits() error {
	var err error
	if s.rules, err = s.cfg.LimitRules(); err != nil {
		return err
	}
	pre, ok, err := s.cfg.PreAuthLimit()
	if err != nil {
		return err
	}
	if ok {
		s.preAuth = []ratelimit.Rule{pre}
	}
	if s.cfg.Redis.URL != "" {
		opts, err := goredis.ParseURL(s.cfg.Redis.URL)
		if err != nil {
			return errors.New("redis.url: not a valid Redis URL")
		}
		c := goredis.NewClient(opts)
		s.redis = c
		s.onClose(func(context.Context) error { return c.Close() })
	}
	mem := ratelimit.NewMemory(ratelimit.MemoryOptions{Now: s.now})
	if s.redis == nil {
		s.limiter = mem
		return nil
	}
	primary, err := redisstore.NewLimiter(s.redis, redisstore.LimiterOptions{})
	if err != nil {
		return fmt.Errorf("rate limits: %w", err)
	}
	mode, _ := ratelimit.ParseStoreErrorMode(s.cfg.RateLimits.OnStoreError)
	s.limiter, err = ratelimit.NewFallback(primary, ratelimit.FallbackOptions{
		Mode: mode, Instances: s.cfg.RateLimits.Instances, Local: mem,
		Now: s.now, Logger: s.log, Registerer: s.reg,
	})
	return err
}

// preAuthAlways applies rate_limits.pre_auth to every request it sees: for
// the endpoints outside the route table that take credentials (login,
// WebSocket tickets).
func (s *stack) preAuthAlways() (middleware, error) {
	if len(s.preAuth) == 0 {
		return func(next http.Handler) http.Handler { return next }, nil
	}
	rules := s.preAuth
	return ratelimit.New(ratelimit.Options{Limiter: s.limiter, Logger: s.log, OnReject: s.onReject,
		Rules: func(*http.Request) []ratelimit.Rule { return rules }})
}

// onReject counts a rate-limited request and feeds the per-minute audit
// summary.
func (s *stack) onReject(r *http.Request, rule ratelimit.Rule, _ ratelimit.Result) {
	s.metrics.RateLimited(rule.Name)
	if s.agg == nil {
		return
	}
	info := reqinfo.From(r.Context())
	v := audit.Violation{Rule: rule.Name}
	if info != nil {
		v.Route, v.SourceIP, v.Subject = info.Route, info.ClientIP, info.ClientIP.String()
		if !info.Principal.Anonymous() {
			v.Subject = info.Principal.ID
		}
	}
	s.agg.Observe(v)
}

// rateLimits returns the pre-authentication (per IP, routes that need a
// key) and post-authentication (configured rules) middleware.
func (s *stack) rateLimits() (pre, post middleware, err error) {
	onReject := s.onReject
	pre = func(next http.Handler) http.Handler { return next }
	if len(s.preAuth) > 0 {
		rules := s.preAuth
		pre, err = ratelimit.New(ratelimit.Options{
			Limiter: s.limiter, Logger: s.log, OnReject: onReject,
			Rules: func(r *http.Request) []ratelimit.Rule {
				if rt := routeFrom(r.Context()); rt != nil && rt.Authenticated() {
					return rules
				}
				return nil
			},
		})
		if err != nil {
			return nil, nil, err
		}
	}
	post = func(next http.Handler) http.Handler { return next }
	if len(s.rules) > 0 {
		all := s.rules
		post, err = ratelimit.New(ratelimit.Options{
			Limiter: s.limiter, Logger: s.log, OnReject: onReject,
			Rules: func(r *http.Request) []ratelimit.Rule {
				var out []ratelimit.Rule
				for _, lr := range all {
					if lr.Applies(r.Method, r.URL.Path) {
						out = append(out, lr.Rule)
					}
				}
				return out
			},
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return pre, post, nil
}

func (s *stack) buildWebSocket() error {
	ws := false
	for _, r := range s.cfg.Routes {
		ws = ws || r.WebSocket
	}
	if !ws {
		return nil
	}
	w := s.cfg.WebSocket
	topts := wsgate.TicketsOptions{TTL: w.TicketTTL, BindClientIP: w.BindClientIP, BindOrigin: w.BindOrigin, Now: s.now, Log: s.log}
	gopts := wsgate.Options{
		MaxPerPrincipal: w.MaxPerPrincipal, MaxTotal: w.MaxTotal,
		IdleTimeout: w.IdleTimeout, PingInterval: w.PingInterval,
		MaxMessageBytes: int64(w.MaxMessageBytes),
		Now:             s.now, Log: s.log,
		CheckOrigin: corsOriginAllowed(s.cfg.CORS),
		OnOpen:      s.wsOpened, OnClose: s.wsClosed,
	}
	if w.MessageRate != "" {
		lim, err := ratelimit.ParseLimit(w.MessageRate)
		if err != nil {
			return fmt.Errorf("websocket.message_rate: %w", err)
		}
		gopts.MessageRate = lim
	}
	if s.redis != nil {
		t, err := wsredis.NewTickets(s.redis, wsredis.TicketsOptions{})
		if err != nil {
			return fmt.Errorf("websocket: %w", err)
		}
		topts.Store = t
		host, _ := os.Hostname()
		reg, err := wsredis.NewRegistry(s.redis, wsredis.RegistryOptions{Instance: fmt.Sprintf("%s-%d", host, os.Getpid()), Log: s.log})
		if err != nil {
			return fmt.Errorf("websocket registry: %w", err)
		}
		s.wsReg = reg
		s.onClose(reg.Close)
		rev, err := wsredis.NewRevocations(s.redis, wsredis.RevocationsOptions{Log: s.log})
		if err != nil {
			return fmt.Errorf("websocket revocations: %w", err)
		}
		gopts.Registry, gopts.Revocations = reg, rev
	}
	var err error
	if s.tickets, err = wsgate.NewTickets(topts); err != nil {
		return fmt.Errorf("websocket: %w", err)
	}
	gopts.Tickets = s.tickets
	if s.gate, err = wsgate.New(gopts); err != nil {
		return fmt.Errorf("websocket: %w", err)
	}
	s.onClose(s.gate.Shutdown)
	return nil
}

func (s *stack) wsOpened(ev wsgate.Event) {
	s.metrics.WSConnect()
	s.record(context.Background(), s.wsEvent(audit.TypeWSOpened, ev))
}

func (s *stack) wsClosed(ev wsgate.Event) {
	s.metrics.WSDisconnect(ev.Reason)
	e := s.wsEvent(audit.TypeWSClosed, ev)
	e.Details["code"], e.Details["reason"], e.Details["duration_ms"] = ev.Code, ev.Reason, ev.Duration.Milliseconds()
	s.record(context.Background(), e)
}

func (s *stack) wsEvent(typ string, ev wsgate.Event) audit.Event {
	return audit.Event{Type: typ, User: ev.Principal.ID, SourceIP: ev.ClientIP, RequestID: ev.RequestID,
		Route: ev.Route, Outcome: audit.OutcomeOK, Details: map[string]any{"conn_id": ev.ConnID}}
}

// corsOriginAllowed answers the WebSocket gate's cross-origin question
// with the same allowlist rs/cors applies to every other request.
func corsOriginAllowed(c config.CORS) func(string) bool {
	policy := corsPolicy(c)
	return func(origin string) bool {
		return policy.OriginAllowed(&http.Request{Header: http.Header{"Origin": {origin}}})
	}
}

// OpenKeys opens the config's store and API key pepper the way serve does,
// for `rampart keys -c`: keys created this way verify on the gateway.
// Call closeFn when done.
func OpenKeys(ctx context.Context, cfg config.Config) (m *admin.Manager, closeFn func() error, err error) {
	if err := devSecrets(&cfg, slog.New(slog.DiscardHandler)); err != nil {
		return nil, nil, err
	}
	ref := cfg.Secrets.APIKeyPepper
	if ref == "" {
		return nil, nil, errors.New("secrets.api_key_pepper is not configured")
	}
	sm, err := secrets.Open(ctx, []secrets.Spec{{Name: secretPepper, Ref: ref}}, secretOptions(cfg, slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, nil, err
	}
	peppers, err := pepperList(sm.Keyring(secretPepper))
	if err != nil {
		return nil, nil, err
	}
	ring, err := apikey.NewKeyring(peppers[0], peppers[1:]...)
	if err != nil {
		return nil, nil, fmt.Errorf("secrets.api_key_pepper: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("state_dir: %w", err)
	}
	st, err := store.Open(ctx, cfg.StoreURL())
	if err != nil {
		return nil, nil, err
	}
	closers := []func() error{st.Close}
	closeAll := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	var onChange func(context.Context, admin.Change)
	if cfg.Redis.URL != "" {
		// Running gateways learn of a revocation or rotation at once, as
		// when it is made through the admin API: caches drop the key and
		// its WebSockets close on every instance.
		opts, err := goredis.ParseURL(cfg.Redis.URL)
		if err != nil {
			closeAll()
			return nil, nil, errors.New("redis.url: not a valid Redis URL")
		}
		c := goredis.NewClient(opts)
		closers = append(closers, c.Close)
		rev, err := wsredis.NewRevocations(c, wsredis.RevocationsOptions{})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		onChange = func(ctx context.Context, ch admin.Change) {
			if ch.Action == "create" {
				return
			}
			ctx = context.WithoutCancel(ctx)
			_ = c.Publish(ctx, keyInvalidations, ch.KeyID).Err()
			if ch.Action == "revoke" {
				_ = rev.Publish(ctx, wsgate.Revocation{KeyID: ch.KeyID})
			}
		}
	}
	m, err = admin.NewManager(admin.ManagerOptions{Store: st, Keyring: ring, Env: keyEnv(cfg), OnChange: onChange})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return m, closeAll, nil
}

// keyEnv is the prefix of new keys: rk_test_ in development, so a key made
// for a laptop is recognisable wherever it leaks; rk_live_ in production.
func keyEnv(cfg config.Config) apikey.Env {
	if cfg.Production() {
		return apikey.EnvLive
	}
	return apikey.EnvTest
}

// secretOptions are the provider settings every secrets.Open shares: AWS
// from the standard chain, Vault from VAULT_ADDR, VAULT_TOKEN and the like.
func secretOptions(cfg config.Config, log *slog.Logger) secrets.Options {
	return secrets.Options{Production: cfg.Production(), Logger: log, Vault: secrets.VaultOptionsFromEnv(os.Getenv)}
}
