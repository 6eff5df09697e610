// Package auth authenticates API keys and authorizes requests against a
// per-route Policy. It is the gateway's only reader of Authorization and
// X-API-Key.
//
// The Authenticator parses a presented key (apikey.Parse refuses garbage
// before any lookup), finds its record through a short-lived in-memory
// cache (a cached hit costs no store round trip), verifies the peppered
// HMAC in constant time, checks expiry, revocation and rotation grace, then
// the permission. Refusals are 401 with WWW-Authenticate and a generic
// body, 403 for insufficient permission, and 503 when the store fails: a
// store error is never a pass. Last use is written in batches.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

// KeyLookup finds a key record by ID. It returns an error wrapping
// apikey.ErrNotFound when no key has the ID; any other error is treated as
// the store being unavailable.
type KeyLookup interface {
	LookupKey(ctx context.Context, id string) (apikey.Record, error)
}

// UsageStore records last use for a batch of keys. When Options.Keys also
// implements it, last_used_at is maintained.
type UsageStore interface {
	TouchKeys(ctx context.Context, used map[string]time.Time) error
}

// Rehasher replaces a key's hash. When Options.Keys also implements it, a
// key hashed under an older pepper is rehashed under the current one on
// its first successful use.
type Rehasher interface {
	RehashKey(ctx context.Context, id string, hash []byte, pepperVersion int) error
}

// Headers set for the upstream. Copies sent by clients are always removed,
// as are HeaderUser and HeaderRoles, which later layers set for people.
const (
	HeaderKeyID       = "X-Rampart-Key-ID"
	HeaderPermissions = "X-Rampart-Permissions"
	HeaderUser        = "X-Rampart-User"
	HeaderRoles       = "X-Rampart-Roles"
	headerAPIKey      = "X-Api-Key" // canonical form of X-API-Key
)

// Outcomes, stored in reqinfo.Info.Outcome on refusal and in Event.
// Clients never see them.
const (
	OutcomeOK          = "auth_ok"
	OutcomeMissing     = "auth_missing"
	OutcomeMalformed   = "auth_malformed"   // not a well-formed key, bad checksum, ambiguous headers
	OutcomeUnknown     = "auth_unknown"     // no key with this ID
	OutcomeInvalid     = "auth_invalid"     // secret does not match
	OutcomeExpired     = "auth_expired"     // past expires_at
	OutcomeRevoked     = "auth_revoked"     // revoked
	OutcomeRetired     = "auth_retired"     // rotated and the grace period is over
	OutcomeForbidden   = "auth_forbidden"   // valid key, insufficient permission
	OutcomeUnavailable = "auth_unavailable" // store error: 503
	OutcomeKeyInQuery  = "auth_key_in_query"
)

// Errors from Authenticate.
var (
	ErrUnauthenticated = errors.New("auth: invalid or missing API key")
	ErrUnavailable     = errors.New("auth: key store unavailable")
)

// Event describes one authentication decision, for audit.
type Event struct {
	Outcome    string             // one of the Outcome constants
	KeyID      string             // empty when no well-formed key was presented
	Required   reqinfo.Permission // permission the route needed; zero before the check
	Deprecated bool               // key used during its rotation grace period
}

// Options configure an Authenticator.
type Options struct {
	// Keys finds key records. Required. If it also implements UsageStore
	// or Rehasher, those are used.
	Keys KeyLookup
	// Keyring verifies key hashes. Required.
	Keyring *apikey.Keyring
	// Policy gives each request's policy for Middleware. Nil means the
	// zero Policy for every request: an API key with by-method permission.
	Policy PolicyFunc
	// Logger receives warnings (deprecated key use) and store errors.
	// Nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CacheTTL bounds how long a revocation made elsewhere can go unseen.
	// Default 1s.
	CacheTTL time.Duration
	// NegativeTTL is how long an unknown ID is remembered. Default CacheTTL.
	NegativeTTL time.Duration
	// CacheSize bounds the number of cached IDs. Default 10000.
	CacheSize int
	// UsageInterval is the minimum time between last-used updates of one
	// key. Default 1m.
	UsageInterval time.Duration
	// FlushInterval is how often pending last-used times are written.
	// Default 10s. A negative value disables the background flusher; call
	// Flush yourself.
	FlushInterval time.Duration
	// OnAuth, if set, is called for every decision on a route that needs a
	// key (and for every key-in-query refusal). It runs on the request
	// path: keep it fast.
	OnAuth func(ctx context.Context, ev Event)
	// Realm is the WWW-Authenticate realm. Default "rampart".
	Realm string
}

// Authenticator is the API key authentication and authorization layer.
type Authenticator struct {
	keyring  *apikey.Keyring
	policy   PolicyFunc
	log      *slog.Logger
	now      func() time.Time
	cache    *cache
	usage    *usage // nil when the store cannot record use
	rehasher Rehasher
	onAuth   func(ctx context.Context, ev Event)

	wwwMissing, wwwInvalid string

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// New returns an Authenticator. If the store records usage and
// FlushInterval is not negative, a background flusher runs until Close.
func New(opts Options) (*Authenticator, error) {
	if opts.Keys == nil {
		return nil, errors.New("auth: Options.Keys is required")
	}
	if opts.Keyring == nil {
		return nil, errors.New("auth: Options.Keyring is required")
	}
	if opts.CacheTTL < 0 || opts.NegativeTTL < 0 || opts.UsageInterval < 0 || opts.CacheSize < 0 {
		return nil, errors.New("auth: negative cache or usage setting")
	}
	if opts.Policy == nil {
		opts.Policy = func(*http.Request) Policy { return Policy{} }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = time.Second
	}
	if opts.NegativeTTL == 0 {
		opts.NegativeTTL = opts.CacheTTL
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 10000
	}
	if opts.UsageInterval == 0 {
		opts.UsageInterval = time.Minute
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 10 * time.Second
	}
	if opts.Realm == "" {
		opts.Realm = "rampart"
	}
	if strings.ContainsAny(opts.Realm, "\"\\\r\n") {
		return nil, fmt.Errorf("auth: realm %q contains a quote, backslash or newline", opts.Realm)
	}
	a := &Authenticator{
		keyring:    opts.Keyring,
		policy:     opts.Policy,
		log:        opts.Logger,
		now:        opts.Now,
		cache:      newCache(opts.Keys, opts.Now, opts.CacheTTL, opts.NegativeTTL, opts.CacheSize),
		onAuth:     opts.OnAuth,
		wwwMissing: `Bearer realm="` + opts.Realm + `"`,
		wwwInvalid: `Bearer realm="` + opts.Realm + `", error="invalid_token"`,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	a.rehasher, _ = opts.Keys.(Rehasher)
	if us, ok := opts.Keys.(UsageStore); ok {
		a.usage = newUsage(us, opts.UsageInterval)
	}
	if a.usage != nil && opts.FlushInterval > 0 {
		go a.flushLoop(opts.FlushInterval)
	} else {
		close(a.done)
	}
	return a, nil
}

func (a *Authenticator) flushLoop(every time.Duration) {
	defer close(a.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			if err := a.Flush(ctx); err != nil {
				a.log.Warn("api key last-used flush failed", "error", err)
			}
			cancel()
		}
	}
}

// Flush writes pending last-used times now.
func (a *Authenticator) Flush(ctx context.Context) error {
	if a.usage == nil {
		return nil
	}
	if err := a.usage.flush(ctx, a.now()); err != nil {
		return fmt.Errorf("auth: flush last used: %w", err)
	}
	return nil
}

// Close stops the background flusher and writes what is pending.
func (a *Authenticator) Close(ctx context.Context) error {
	a.closeOnce.Do(func() { close(a.stop) })
	select {
	case <-a.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return a.Flush(ctx)
}

// Invalidate drops id from the cache so the next use reads the store.
// Call it after revoking or rotating a key, and from a cross-instance
// fan-out (e.g. Redis pub/sub) when one is configured.
func (a *Authenticator) Invalidate(id string) { a.cache.invalidate(id) }

// Principal is what Authenticate returns on success.
type Principal struct {
	reqinfo.Principal
	// GraceUntil is set when the key has been rotated and works only until
	// then.
	GraceUntil time.Time
}

// Authenticate checks a presented key (the bare key text, no scheme) and
// returns its principal. It returns ErrUnauthenticated for any bad key and
// ErrUnavailable (wrapping the cause) when the store fails. It does not
// check permissions. Other entry points (WebSocket tickets) use it.
func (a *Authenticator) Authenticate(ctx context.Context, credential string) (Principal, error) {
	e, _, outcome, err := a.verify(ctx, credential)
	switch {
	case outcome == OutcomeUnavailable:
		return Principal{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	case outcome != OutcomeOK:
		return Principal{}, ErrUnauthenticated
	}
	p := Principal{Principal: principalOf(e)}
	if !e.rec.RotatedAt.IsZero() {
		p.GraceUntil = e.rec.GraceUntil
	}
	return p, nil
}

func principalOf(e *entry) reqinfo.Principal {
	return reqinfo.Principal{Kind: "api_key", ID: e.rec.ID, Name: e.rec.Name, Permissions: e.rec.Permissions.Implied()}
}

// verify returns the cache entry for a valid, usable key, or the outcome
// explaining the refusal. keyID is set once the key parsed.
func (a *Authenticator) verify(ctx context.Context, credential string) (e *entry, keyID, outcome string, err error) {
	k, err := apikey.Parse(credential)
	if err != nil {
		return nil, "", OutcomeMalformed, nil
	}
	id := k.ID()
	e, err = a.cache.get(ctx, id)
	if err != nil {
		return nil, id, OutcomeUnavailable, err
	}
	if !e.found {
		return nil, id, OutcomeUnknown, nil
	}
	if err := a.keyring.Verify(k, e.rec.Hash, e.rec.PepperVersion); err != nil {
		if errors.Is(err, apikey.ErrUnknownPepper) {
			a.log.Error("api key hashed with a pepper version not in the keyring", "key_id", id, "pepper_version", e.rec.PepperVersion)
		}
		return nil, id, OutcomeInvalid, nil
	}
	switch e.rec.Status(a.now()) {
	case apikey.StatusRevoked:
		return nil, id, OutcomeRevoked, nil
	case apikey.StatusExpired:
		return nil, id, OutcomeExpired, nil
	case apikey.StatusRetired:
		return nil, id, OutcomeRetired, nil
	}
	if a.keyring.NeedsRehash(e.rec.PepperVersion) && a.rehasher != nil {
		a.rehash(ctx, k, e)
	}
	return e, id, OutcomeOK, nil
}

// rehash moves a key to the current pepper. A failure is logged and the
// request proceeds: the old hash is still valid.
func (a *Authenticator) rehash(ctx context.Context, k apikey.Key, e *entry) {
	hash, version := a.keyring.Hash(k)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.rehasher.RehashKey(ctx, e.rec.ID, hash, version); err != nil {
		a.log.Warn("api key rehash failed", "key_id", e.rec.ID, "error", err)
		return
	}
	rec := e.rec
	rec.Hash, rec.PepperVersion = hash, version
	a.cache.replace(rec)
	a.log.Info("api key rehashed under current pepper", "key_id", rec.ID, "pepper_version", version)
}

// Middleware applies Options.Policy to each request.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return &handler{a: a, next: next, policy: a.policy}
}

// Require returns middleware applying one fixed policy to every request,
// e.g. admin permission for the admin API.
func (a *Authenticator) Require(p Policy) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return &handler{a: a, next: next, policy: func(*http.Request) Policy { return p }}
	}
}

type handler struct {
	a      *Authenticator
	next   http.Handler
	policy PolicyFunc
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := h.a
	ctx := r.Context()
	info := reqinfo.From(ctx)
	if info == nil {
		info = &reqinfo.Info{}
		ctx = reqinfo.With(ctx, info)
		r = r.WithContext(ctx)
	}
	hdr := r.Header
	hdr.Del(HeaderKeyID)
	hdr.Del(HeaderPermissions)
	hdr.Del(HeaderUser)
	hdr.Del(HeaderRoles)

	pol := h.policy(r)
	if r.URL.RawQuery != "" && queryCarriesKey(r.URL.RawQuery, pol.Auth == AuthAPIKey) {
		a.refuse(w, r, info, Event{Outcome: OutcomeKeyInQuery})
		return
	}
	if pol.Auth == AuthNone {
		h.next.ServeHTTP(w, r)
		return
	}

	cred, outcome := credential(hdr)
	if outcome != "" {
		a.refuse(w, r, info, Event{Outcome: outcome})
		return
	}
	e, keyID, outcome, err := a.verify(ctx, cred)
	if outcome != OutcomeOK {
		if err != nil {
			a.log.Error("api key lookup failed", "key_id", keyID, "error", err)
		}
		a.refuse(w, r, info, Event{Outcome: outcome, KeyID: keyID})
		return
	}
	need := pol.Permission.For(r.Method)
	ev := Event{Outcome: OutcomeOK, KeyID: keyID, Required: need}
	if !e.rec.Permissions.Has(need) {
		ev.Outcome = OutcomeForbidden
		info.Principal = principalOf(e)
		a.refuse(w, r, info, ev)
		return
	}

	info.Principal = principalOf(e)
	hdr.Set(HeaderKeyID, e.rec.ID)
	hdr.Set(HeaderPermissions, e.perms)
	if !pol.ForwardCredentials {
		hdr.Del("Authorization")
		hdr.Del(headerAPIKey)
	}
	now := a.now()
	if !e.rec.RotatedAt.IsZero() {
		ev.Deprecated = true
		wh := w.Header()
		wh.Set("Deprecation", "@"+strconv.FormatInt(e.rec.RotatedAt.Unix(), 10))
		wh.Set("Sunset", e.rec.GraceUntil.UTC().Format(http.TimeFormat))
		a.log.Warn("rotated api key used during grace period",
			"key_id", e.rec.ID, "key_name", e.rec.Name, "grace_until", e.rec.GraceUntil)
	}
	if a.usage != nil {
		a.usage.record(e.rec.ID, now)
	}
	if a.onAuth != nil {
		a.onAuth(ctx, ev)
	}
	h.next.ServeHTTP(w, r)
}

// credential returns the presented key text, or an outcome when there is
// none or the headers are ambiguous.
func credential(h http.Header) (string, string) {
	var bearer, xkey string
	auths := h["Authorization"]
	switch len(auths) {
	case 0:
	case 1:
		v := auths[0]
		if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
			return "", OutcomeMalformed
		}
		bearer = strings.TrimSpace(v[7:])
		if bearer == "" {
			return "", OutcomeMalformed
		}
	default:
		return "", OutcomeMalformed
	}
	keys := h[headerAPIKey]
	switch len(keys) {
	case 0:
	case 1:
		xkey = strings.TrimSpace(keys[0])
		if xkey == "" {
			return "", OutcomeMalformed
		}
	default:
		return "", OutcomeMalformed
	}
	switch {
	case bearer != "" && xkey != "" && bearer != xkey:
		return "", OutcomeMalformed
	case bearer != "":
		return bearer, ""
	case xkey != "":
		return xkey, ""
	}
	return "", OutcomeMissing
}

// Response bodies. They never say which part of a credential was wrong.
const (
	bodyUnauthorized = `{"error":"unauthorized","message":"a valid API key is required: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"}` + "\n"
	bodyKeyInQuery   = `{"error":"unauthorized","message":"API keys are not accepted in the URL; send the key in the 'Authorization: Bearer <key>' or 'X-API-Key: <key>' header, and rotate the key you sent, since URLs end up in logs"}` + "\n"
	bodyForbidden    = `{"error":"forbidden","message":"this API key does not have the permission this request needs"}` + "\n"
	bodyUnavailable  = `{"error":"unavailable","message":"authentication is temporarily unavailable; retry shortly"}` + "\n"
)

// refuse writes the response for a refusal and reports it.
func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, info *reqinfo.Info, ev Event) {
	info.Outcome = ev.Outcome
	if a.onAuth != nil {
		a.onAuth(r.Context(), ev)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	var status int
	var body string
	switch ev.Outcome {
	case OutcomeForbidden:
		status, body = http.StatusForbidden, bodyForbidden
	case OutcomeUnavailable:
		status, body = http.StatusServiceUnavailable, bodyUnavailable
		h.Set("Retry-After", "1")
	case OutcomeKeyInQuery:
		status, body = http.StatusUnauthorized, bodyKeyInQuery
		h.Set("WWW-Authenticate", a.wwwInvalid)
	case OutcomeMissing:
		status, body = http.StatusUnauthorized, bodyUnauthorized
		h.Set("WWW-Authenticate", a.wwwMissing)
	default:
		status, body = http.StatusUnauthorized, bodyUnauthorized
		h.Set("WWW-Authenticate", a.wwwInvalid)
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}
