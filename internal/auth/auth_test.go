package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

// fakeStore is an in-memory key store that counts lookups and can fail.
type fakeStore struct {
	mu      sync.Mutex
	recs    map[string]apikey.Record
	lookups int
	fail    error
	block   chan struct{} // when set, LookupKey signals entered and waits on it
	entered chan struct{}
	touched []map[string]time.Time
	touchFn func() error
}

func newFakeStore() *fakeStore { return &fakeStore{recs: map[string]apikey.Record{}} }

func (s *fakeStore) LookupKey(ctx context.Context, id string) (apikey.Record, error) {
	s.mu.Lock()
	s.lookups++
	block, fail := s.block, s.fail
	rec, ok := s.recs[id]
	s.mu.Unlock()
	if block != nil {
		s.entered <- struct{}{}
		<-block
	}
	if fail != nil {
		return apikey.Record{}, fail
	}
	if !ok {
		return apikey.Record{}, apikey.ErrNotFound
	}
	return rec, nil
}

func (s *fakeStore) TouchKeys(ctx context.Context, used map[string]time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.touchFn != nil {
		if err := s.touchFn(); err != nil {
			return err
		}
	}
	cp := make(map[string]time.Time, len(used))
	for k, v := range used {
		cp[k] = v
	}
	s.touched = append(s.touched, cp)
	return nil
}

func (s *fakeStore) RehashKey(ctx context.Context, id string, hash []byte, v int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.recs[id]
	if !ok {
		return apikey.ErrNotFound
	}
	rec.Hash, rec.PepperVersion = hash, v
	s.recs[id] = rec
	return nil
}

func (s *fakeStore) update(id string, f func(*apikey.Record)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.recs[id]
	f(&rec)
	s.recs[id] = rec
}

func (s *fakeStore) lookupCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookups
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func pepper(v int) apikey.Pepper {
	return apikey.Pepper{Version: v, Secret: bytes.Repeat([]byte{byte('k' + v)}, 32)}
}

type fixture struct {
	store   *fakeStore
	clock   *clock
	ring    *apikey.Keyring
	auth    *Authenticator
	logs    *bytes.Buffer
	events  []Event
	evMu    sync.Mutex
	policy  Policy
	keys    map[string]string // name -> full key text
	records map[string]apikey.Record
}

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{store: newFakeStore(), clock: &clock{t: t0}, logs: &bytes.Buffer{}, keys: map[string]string{}, records: map[string]apikey.Record{}}
	ring, err := apikey.NewKeyring(pepper(2), pepper(1))
	if err != nil {
		t.Fatal(err)
	}
	f.ring = ring
	opts := Options{
		Keys:          f.store,
		Keyring:       ring,
		Policy:        func(*http.Request) Policy { return f.policy },
		Logger:        slog.New(slog.NewJSONHandler(f.logs, nil)),
		Now:           f.clock.Now,
		FlushInterval: -1,
		OnAuth: func(_ context.Context, ev Event) {
			f.evMu.Lock()
			f.events = append(f.events, ev)
			f.evMu.Unlock()
		},
	}
	if mod != nil {
		mod(&opts)
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	f.auth = a
	return f
}

// addKey creates a key and stores its record after edit.
func (f *fixture) addKey(t *testing.T, name string, perm reqinfo.Permission, edit func(*apikey.Record)) string {
	t.Helper()
	k, err := apikey.Generate(rand.Reader, apikey.EnvLive)
	if err != nil {
		t.Fatal(err)
	}
	hash, v := f.ring.Hash(k)
	rec := apikey.Record{ID: k.ID(), Name: name, Hash: hash, PepperVersion: v, Permissions: perm, CreatedAt: t0.Add(-time.Hour)}
	if edit != nil {
		edit(&rec)
	}
	f.store.mu.Lock()
	f.store.recs[rec.ID] = rec
	f.store.mu.Unlock()
	f.keys[name] = k.Reveal()
	f.records[name] = rec
	return k.Reveal()
}

// upstream records what reached it.
type upstream struct {
	called bool
	header http.Header
	info   reqinfo.Info
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.called = true
	u.header = r.Header.Clone()
	if info := reqinfo.From(r.Context()); info != nil {
		u.info = *info
	}
	w.WriteHeader(http.StatusOK)
}

func (f *fixture) do(method, target string, hdr map[string][]string) (*httptest.ResponseRecorder, *upstream, *reqinfo.Info) {
	up := &upstream{}
	h := f.auth.Middleware(up)
	r := httptest.NewRequest(method, target, nil)
	for k, vs := range hdr {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	info := &reqinfo.Info{}
	r = r.WithContext(reqinfo.With(r.Context(), info))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, up, info
}

func bearer(k string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + k}}
}

func TestMiddlewareDecisions(t *testing.T) {
	f := newFixture(t, nil)
	read := f.addKey(t, "read", reqinfo.PermRead, nil)
	write := f.addKey(t, "write", reqinfo.PermWrite, nil)
	admin := f.addKey(t, "admin", reqinfo.PermAdmin, nil)
	expired := f.addKey(t, "expired", reqinfo.PermAdmin, func(r *apikey.Record) { r.ExpiresAt = t0 })
	revoked := f.addKey(t, "revoked", reqinfo.PermAdmin, func(r *apikey.Record) { r.RevokedAt = t0.Add(-time.Minute) })
	retired := f.addKey(t, "retired", reqinfo.PermAdmin, func(r *apikey.Record) {
		r.RotatedAt, r.GraceUntil = t0.Add(-2*time.Hour), t0.Add(-time.Second)
	})
	// A record whose hash belongs to another key: the secret is wrong.
	wrongSecret := f.addKey(t, "wrong", reqinfo.PermAdmin, nil)
	f.store.update(f.records["wrong"].ID, func(r *apikey.Record) { r.Hash = f.records["admin"].Hash })
	unknown, _ := apikey.Generate(rand.Reader, apikey.EnvLive)
	badChecksum := read[:len(read)-1] + "A"
	if badChecksum == read {
		badChecksum = read[:len(read)-1] + "B"
	}

	byMethod := Policy{Auth: AuthAPIKey, Permission: PermissionByMethod}
	tests := []struct {
		name    string
		policy  Policy
		method  string
		target  string
		hdr     map[string][]string
		status  int
		outcome string
	}{
		{"none route without key", Policy{Auth: AuthNone}, "GET", "/", nil, 200, ""},
		{"missing", byMethod, "GET", "/", nil, 401, OutcomeMissing},
		{"garbage", byMethod, "GET", "/", bearer("hunter2"), 401, OutcomeMalformed},
		{"bad checksum", byMethod, "GET", "/", bearer(badChecksum), 401, OutcomeMalformed},
		{"unknown id", byMethod, "GET", "/", bearer(unknown.Reveal()), 401, OutcomeUnknown},
		{"wrong secret", byMethod, "GET", "/", bearer(wrongSecret), 401, OutcomeInvalid},
		{"expired", byMethod, "GET", "/", bearer(expired), 401, OutcomeExpired},
		{"revoked", byMethod, "GET", "/", bearer(revoked), 401, OutcomeRevoked},
		{"retired after grace", byMethod, "GET", "/", bearer(retired), 401, OutcomeRetired},
		{"basic scheme", byMethod, "GET", "/", map[string][]string{"Authorization": {"Basic dXNlcjpwYXNz"}}, 401, OutcomeMalformed},
		{"empty bearer", byMethod, "GET", "/", map[string][]string{"Authorization": {"Bearer  "}}, 401, OutcomeMalformed},
		{"two authorization headers", byMethod, "GET", "/", map[string][]string{"Authorization": {"Bearer " + read, "Bearer " + read}}, 401, OutcomeMalformed},
		{"bearer and x-api-key differ", byMethod, "GET", "/", map[string][]string{"Authorization": {"Bearer " + read}, "X-API-Key": {write}}, 401, OutcomeMalformed},
		{"bearer and x-api-key agree", byMethod, "GET", "/", map[string][]string{"Authorization": {"Bearer " + read}, "X-API-Key": {read}}, 200, ""},
		{"lowercase bearer scheme", byMethod, "GET", "/", map[string][]string{"Authorization": {"bearer " + read}}, 200, ""},
		{"x-api-key", byMethod, "GET", "/", map[string][]string{"X-API-Key": {read}}, 200, ""},
		{"read key GET", byMethod, "GET", "/", bearer(read), 200, ""},
		{"read key HEAD", byMethod, "HEAD", "/", bearer(read), 200, ""},
		{"read key OPTIONS", byMethod, "OPTIONS", "/", bearer(read), 200, ""},
		{"read key POST", byMethod, "POST", "/", bearer(read), 403, OutcomeForbidden},
		{"read key DELETE", byMethod, "DELETE", "/", bearer(read), 403, OutcomeForbidden},
		{"write key POST", byMethod, "POST", "/", bearer(write), 200, ""},
		{"write key GET (write implies read)", byMethod, "GET", "/", bearer(write), 200, ""},
		{"write key on admin route", Policy{Permission: PermissionAdmin}, "GET", "/", bearer(write), 403, OutcomeForbidden},
		{"admin key on admin route", Policy{Permission: PermissionAdmin}, "POST", "/", bearer(admin), 200, ""},
		{"read key on write route GET", Policy{Permission: PermissionWrite}, "GET", "/", bearer(read), 403, OutcomeForbidden},
		{"key in query api_key", byMethod, "GET", "/?api_key=" + read, nil, 401, OutcomeKeyInQuery},
		{"key in query with header too", byMethod, "GET", "/?x=1&token=abc", bearer(read), 401, OutcomeKeyInQuery},
		{"escaped param name", byMethod, "GET", "/?access%5Ftoken=abc", bearer(read), 401, OutcomeKeyInQuery},
		{"rampart key in query on open route", Policy{Auth: AuthNone}, "GET", "/?q=" + read, nil, 401, OutcomeKeyInQuery},
		{"other key param on open route passes", Policy{Auth: AuthNone}, "GET", "/?key=value", nil, 200, ""},
		{"harmless query on key route", byMethod, "GET", "/?page=2&sort=name", bearer(read), 200, ""},
	}
	unauthorizedBody := ""
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.policy = tt.policy
			w, up, info := f.do(tt.method, tt.target, tt.hdr)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", w.Code, tt.status, w.Body)
			}
			if info.Outcome != tt.outcome {
				t.Fatalf("outcome = %q, want %q", info.Outcome, tt.outcome)
			}
			if up.called != (tt.status == 200) {
				t.Fatalf("upstream called = %v", up.called)
			}
			switch tt.status {
			case 401:
				if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer realm="rampart"`) {
					t.Fatalf("WWW-Authenticate = %q", w.Header().Get("WWW-Authenticate"))
				}
				if w.Header().Get("Content-Type") != "application/json" {
					t.Fatalf("Content-Type = %q", w.Header().Get("Content-Type"))
				}
				if tt.outcome == OutcomeKeyInQuery {
					if !strings.Contains(w.Body.String(), "header") {
						t.Fatalf("key-in-query body does not tell to use a header: %s", w.Body)
					}
					break
				}
				// Every other 401 has the same body, whatever was wrong.
				if tt.method != "HEAD" {
					if unauthorizedBody == "" {
						unauthorizedBody = w.Body.String()
					} else if w.Body.String() != unauthorizedBody {
						t.Fatalf("401 body differs by cause: %s", w.Body)
					}
				}
			case 403:
				if info.Principal.ID == "" {
					t.Fatal("403 without principal recorded")
				}
			case 200:
				if tt.policy.Auth == AuthAPIKey && (info.Principal.Kind != "api_key" || up.info.Principal.ID == "") {
					t.Fatalf("principal not set: %+v", info.Principal)
				}
			}
			for _, secretBearing := range []string{read, write, admin} {
				if strings.Contains(w.Body.String(), secretBearing) {
					t.Fatal("response body echoes a key")
				}
			}
		})
	}
	if strings.Contains(f.logs.String(), read[21:]) {
		t.Fatal("a key secret reached the log")
	}
}

func TestUpstreamHeaders(t *testing.T) {
	f := newFixture(t, nil)
	key := f.addKey(t, "w", reqinfo.PermWrite, nil)
	id := f.records["w"].ID
	spoofed := map[string][]string{
		"Authorization":         {"Bearer " + key},
		"X-Rampart-Key-ID":      {"spoofed"},
		"X-Rampart-Permissions": {"admin"},
		"X-Rampart-User":        {"root"},
		"X-Rampart-Roles":       {"admin"},
	}
	tests := []struct {
		name        string
		policy      Policy
		wantKeyID   string
		wantPerms   string
		wantForward bool
	}{
		{"key route strips credentials", Policy{}, id, "read,write", false},
		{"forward credentials", Policy{ForwardCredentials: true}, id, "read,write", true},
		{"open route strips identity headers", Policy{Auth: AuthNone}, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.policy = tt.policy
			w, up, _ := f.do("POST", "/", spoofed)
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			if got := up.header.Values(HeaderKeyID); strings.Join(got, ",") != tt.wantKeyID {
				t.Fatalf("upstream X-Rampart-Key-ID = %q, want %q", got, tt.wantKeyID)
			}
			if got := up.header.Get(HeaderPermissions); got != tt.wantPerms {
				t.Fatalf("upstream X-Rampart-Permissions = %q, want %q", got, tt.wantPerms)
			}
			if up.header.Get(HeaderUser) != "" || up.header.Get(HeaderRoles) != "" {
				t.Fatal("client-sent X-Rampart-User/Roles reached upstream")
			}
			if got := up.header.Get("Authorization") != ""; got != tt.wantForward {
				t.Fatalf("Authorization forwarded = %v, want %v", got, tt.wantForward)
			}
		})
	}
	f.policy = Policy{}
	_, up, _ := f.do("GET", "/", map[string][]string{"X-API-Key": {key}})
	if up.header.Get("X-API-Key") != "" {
		t.Fatal("X-API-Key reached upstream")
	}
}

func TestStoreErrorIs503(t *testing.T) {
	f := newFixture(t, nil)
	key := f.addKey(t, "k", reqinfo.PermAdmin, nil)
	f.store.fail = errors.New("connection refused")
	w, up, info := f.do("GET", "/", bearer(key))
	if w.Code != http.StatusServiceUnavailable || up.called || info.Outcome != OutcomeUnavailable {
		t.Fatalf("store error gave %d, upstream called %v, outcome %q", w.Code, up.called, info.Outcome)
	}
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("no Retry-After on 503")
	}
	if !strings.Contains(f.logs.String(), "connection refused") || strings.Contains(f.logs.String(), key[21:]) {
		t.Fatalf("log: %s", f.logs)
	}
	// Errors are not cached: the store recovering is seen immediately.
	f.store.mu.Lock()
	f.store.fail = nil
	f.store.mu.Unlock()
	if w, _, _ := f.do("GET", "/", bearer(key)); w.Code != 200 {
		t.Fatalf("after recovery status %d", w.Code)
	}
	if _, err := f.auth.Authenticate(context.Background(), "garbage"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Authenticate(garbage) = %v", err)
	}
	f.auth.Invalidate(f.records["k"].ID)
	f.store.fail = errors.New("down")
	if _, err := f.auth.Authenticate(context.Background(), key); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Authenticate with store down = %v", err)
	}
}

func TestCache(t *testing.T) {
	f := newFixture(t, nil)
	key := f.addKey(t, "k", reqinfo.PermRead, nil)
	id := f.records["k"].ID
	get := func() int { w, _, _ := f.do("GET", "/", bearer(key)); return w.Code }

	if get() != 200 || get() != 200 {
		t.Fatal("valid key refused")
	}
	if n := f.store.lookupCount(); n != 1 {
		t.Fatalf("two requests made %d store lookups, want 1 (cached hit)", n)
	}

	// Revoked elsewhere: seen once the TTL (1s) passes, without Invalidate.
	f.store.update(id, func(r *apikey.Record) { r.RevokedAt = t0 })
	f.clock.Advance(999 * time.Millisecond)
	if get() != 200 {
		t.Fatal("cached entry expired early")
	}
	f.clock.Advance(time.Millisecond)
	if get() != 401 {
		t.Fatal("revocation not seen after the cache TTL")
	}

	// Invalidate makes a local revoke immediate.
	key2 := f.addKey(t, "k2", reqinfo.PermRead, nil)
	id2 := f.records["k2"].ID
	if w, _, _ := f.do("GET", "/", bearer(key2)); w.Code != 200 {
		t.Fatal("k2 refused")
	}
	f.store.update(id2, func(r *apikey.Record) { r.RevokedAt = t0 })
	f.auth.Invalidate(id2)
	if w, _, _ := f.do("GET", "/", bearer(key2)); w.Code != 401 {
		t.Fatal("revocation not seen after Invalidate")
	}

	// Unknown IDs are negatively cached.
	unknown, _ := apikey.Generate(rand.Reader, apikey.EnvLive)
	before := f.store.lookupCount()
	for range 3 {
		f.do("GET", "/", bearer(unknown.Reveal()))
	}
	if n := f.store.lookupCount() - before; n != 1 {
		t.Fatalf("unknown ID looked up %d times, want 1", n)
	}
	// Garbage never reaches the store.
	before = f.store.lookupCount()
	f.do("GET", "/", bearer("rk_live_not-a-key"))
	if f.store.lookupCount() != before {
		t.Fatal("malformed key caused a store lookup")
	}
}

func TestCacheBounded(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.CacheSize = 2 })
	for _, n := range []string{"a", "b", "c", "d"} {
		key := f.addKey(t, n, reqinfo.PermRead, nil)
		if w, _, _ := f.do("GET", "/", bearer(key)); w.Code != 200 {
			t.Fatalf("key %s refused", n)
		}
		if l := f.auth.cache.len(); l > 2 {
			t.Fatalf("cache holds %d entries, bound is 2", l)
		}
	}
}

func TestCacheSharesConcurrentMisses(t *testing.T) {
	f := newFixture(t, nil)
	key := f.addKey(t, "k", reqinfo.PermRead, nil)
	block := make(chan struct{})
	f.store.block = block
	f.store.entered = make(chan struct{}, 16)
	var wg sync.WaitGroup
	codes := make(chan int, 5)
	for range 5 {
		wg.Go(func() {
			w, _, _ := f.do("GET", "/", bearer(key))
			codes <- w.Code
		})
	}
	// Wait until the first lookup is in the store, then release it.
	<-f.store.entered
	close(block)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("status %d", c)
		}
	}
	if n := f.store.lookupCount(); n != 1 {
		t.Fatalf("5 concurrent misses made %d store lookups, want 1", n)
	}
}

func TestInvalidateDuringLookup(t *testing.T) {
	f := newFixture(t, nil)
	key := f.addKey(t, "k", reqinfo.PermRead, nil)
	id := f.records["k"].ID
	block := make(chan struct{})
	f.store.block = block
	f.store.entered = make(chan struct{}, 16)
	done := make(chan int)
	go func() { w, _, _ := f.do("GET", "/", bearer(key)); done <- w.Code }()
	<-f.store.entered
	// Revoked and invalidated while the lookup that read the old row runs.
	f.store.update(id, func(r *apikey.Record) { r.RevokedAt = t0 })
	f.auth.Invalidate(id)
	close(block)
	<-done
	f.store.mu.Lock()
	f.store.block = nil
	f.store.mu.Unlock()
	if w, _, _ := f.do("GET", "/", bearer(key)); w.Code != 401 {
		t.Fatalf("stale in-flight lookup was cached: status %d", w.Code)
	}
}

func TestRotationGrace(t *testing.T) {
	f := newFixture(t, nil)
	rotatedAt := t0.Add(-time.Hour)
	grace := t0.Add(time.Hour)
	key := f.addKey(t, "old", reqinfo.PermRead, func(r *apikey.Record) { r.RotatedAt, r.GraceUntil = rotatedAt, grace })
	w, up, _ := f.do("GET", "/", bearer(key))
	if w.Code != 200 || !up.called {
		t.Fatalf("key in grace refused: %d", w.Code)
	}
	if got, want := w.Header().Get("Deprecation"), "@"+strconv.FormatInt(rotatedAt.Unix(), 10); got != want {
		t.Fatalf("Deprecation = %q, want %q", got, want)
	}
	if got := w.Header().Get("Sunset"); got != grace.Format(http.TimeFormat) {
		t.Fatalf("Sunset = %q", got)
	}
	if !strings.Contains(f.logs.String(), "grace period") || !strings.Contains(f.logs.String(), `"level":"WARN"`) {
		t.Fatalf("no warning logged: %s", f.logs)
	}
	if len(f.events) == 0 || !f.events[len(f.events)-1].Deprecated {
		t.Fatalf("audit event not marked deprecated: %+v", f.events)
	}
	p, err := f.auth.Authenticate(context.Background(), key)
	if err != nil || !p.GraceUntil.Equal(grace) {
		t.Fatalf("Authenticate in grace = %+v, %v", p, err)
	}
	f.clock.Advance(time.Hour)
	if w, _, _ := f.do("GET", "/", bearer(key)); w.Code != 401 {
		t.Fatalf("key after grace: %d", w.Code)
	}
}

func TestRehashOldPepper(t *testing.T) {
	f := newFixture(t, nil)
	oldRing, _ := apikey.NewKeyring(pepper(1))
	key := f.addKey(t, "k", reqinfo.PermRead, nil)
	k, _ := apikey.Parse(key)
	h, v := oldRing.Hash(k)
	f.store.update(k.ID(), func(r *apikey.Record) { r.Hash, r.PepperVersion = h, v })
	if w, _, _ := f.do("GET", "/", bearer(key)); w.Code != 200 {
		t.Fatalf("key under previous pepper refused: %d", w.Code)
	}
	f.store.mu.Lock()
	rec := f.store.recs[k.ID()]
	f.store.mu.Unlock()
	if rec.PepperVersion != 2 || f.ring.Verify(k, rec.Hash, 2) != nil {
		t.Fatalf("not rehashed: version %d", rec.PepperVersion)
	}
	if w, _, _ := f.do("GET", "/", bearer(key)); w.Code != 200 {
		t.Fatal("refused after rehash")
	}
}

func TestLastUsedBatching(t *testing.T) {
	f := newFixture(t, nil)
	a := f.addKey(t, "a", reqinfo.PermRead, nil)
	b := f.addKey(t, "b", reqinfo.PermRead, nil)
	ctx := context.Background()
	for range 3 {
		f.do("GET", "/", bearer(a))
		f.clock.Advance(10 * time.Second)
	}
	f.do("GET", "/", bearer(b))
	if err := f.auth.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.store.touched) != 1 || len(f.store.touched[0]) != 2 {
		t.Fatalf("touched = %v, want one batch of two keys", f.store.touched)
	}
	if got := f.store.touched[0][f.records["a"].ID]; !got.Equal(t0) {
		t.Fatalf("a last used %v, want first use %v", got, t0)
	}
	// Within the minute nothing new; after it, one more write.
	f.do("GET", "/", bearer(a))
	f.auth.Flush(ctx)
	if len(f.store.touched) != 1 {
		t.Fatalf("write within the usage interval: %v", f.store.touched)
	}
	f.clock.Advance(time.Minute)
	f.do("GET", "/", bearer(a))
	// A failing flush keeps the pending time for the next one.
	f.store.touchFn = func() error { return errors.New("down") }
	if err := f.auth.Flush(ctx); err == nil {
		t.Fatal("flush error swallowed")
	}
	f.store.touchFn = nil
	if err := f.auth.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.store.touched) != 2 || len(f.store.touched[1]) != 1 {
		t.Fatalf("Close did not flush pending use: %v", f.store.touched)
	}
}

func TestBackgroundFlusherStops(t *testing.T) {
	store := newFakeStore()
	ring, _ := apikey.NewKeyring(pepper(1))
	a, err := New(Options{Keys: store, Keyring: ring, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	ring, _ := apikey.NewKeyring(pepper(1))
	tests := []struct {
		name string
		opts Options
	}{
		{"no store", Options{Keyring: ring}},
		{"no keyring", Options{Keys: newFakeStore()}},
		{"negative ttl", Options{Keys: newFakeStore(), Keyring: ring, CacheTTL: -1}},
		{"quote in realm", Options{Keys: newFakeStore(), Keyring: ring, Realm: `a"b`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestRequireWithoutReqinfo(t *testing.T) {
	f := newFixture(t, nil)
	key := f.addKey(t, "w", reqinfo.PermWrite, nil)
	var got reqinfo.Principal
	h := f.auth.Require(Policy{Permission: PermissionAdmin})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = reqinfo.From(r.Context()).Principal
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+key)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 403 {
		t.Fatalf("write key on Require(admin) = %d", w.Code)
	}
	admin := f.addKey(t, "a", reqinfo.PermAdmin, nil)
	r.Header.Set("Authorization", "Bearer "+admin)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || got.Name != "a" {
		t.Fatalf("admin key = %d, principal %+v", w.Code, got)
	}
}

func TestPolicyParsing(t *testing.T) {
	for _, s := range []string{"none", "api_key"} {
		k, err := ParseKind(s)
		if err != nil || k.String() != s {
			t.Fatalf("ParseKind(%q) = %v, %v", s, k, err)
		}
	}
	for _, s := range []string{"read", "write", "admin", "by_method"} {
		p, err := ParseRequirement(s)
		if err != nil || p.String() != s {
			t.Fatalf("ParseRequirement(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParseKind("session"); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if _, err := ParseRequirement("root"); err == nil {
		t.Fatal("unknown permission accepted")
	}
	var zero Policy
	if zero.Auth != AuthAPIKey || zero.Permission.For("POST") != reqinfo.PermWrite || zero.Permission.For("GET") != reqinfo.PermRead {
		t.Fatal("zero Policy does not fail closed")
	}
}

func TestRedactQuery(t *testing.T) {
	k, _ := apikey.Generate(rand.Reader, apikey.EnvTest)
	tests := []struct{ in, want string }{
		{"", ""},
		{"page=2", "page=2"},
		{"api_key=abc&page=2", "api_key=[redacted]&page=2"},
		{"TOKEN=abc", "TOKEN=[redacted]"},
		{"access%5Ftoken=abc", "access%5Ftoken=[redacted]"},
		{"q=" + k.Reveal(), "q=[redacted]"},
		{k.Reveal(), "[redacted]"},
		{"q=" + strings.ReplaceAll(k.Reveal(), "_", "%5F"), "q=[redacted]"},
	}
	for _, tt := range tests {
		if got := RedactQuery(tt.in); got != tt.want {
			t.Errorf("RedactQuery(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzQueryCarriesKey(f *testing.F) {
	f.Add("api_key=x")
	f.Add("a=b&c=%zz&token")
	f.Add("q=rk_live_x")
	f.Fuzz(func(t *testing.T, raw string) {
		byName := queryCarriesKey(raw, true)
		if queryCarriesKey(raw, false) && !byName {
			t.Fatal("value match without name match")
		}
		red := RedactQuery(raw)
		if looksLikeKey(raw) && strings.Contains(red, "rk_live_") && strings.Count(red, "rk_live_") >= strings.Count(raw, "rk_live_") && strings.Contains(raw, "=") {
			// Keys inside parameter values are always removed.
			for _, p := range strings.Split(red, "&") {
				if _, v, ok := strings.Cut(p, "="); ok && strings.Contains(v, "rk_live_") {
					t.Fatalf("RedactQuery(%q) = %q keeps a key", raw, red)
				}
			}
		}
	})
}

func BenchmarkAuthenticateCached(b *testing.B) {
	store := newFakeStore()
	ring, _ := apikey.NewKeyring(pepper(1))
	k, _ := apikey.Generate(rand.Reader, apikey.EnvLive)
	h, v := ring.Hash(k)
	store.recs[k.ID()] = apikey.Record{ID: k.ID(), Name: "bench", Hash: h, PepperVersion: v, Permissions: reqinfo.PermRead}
	a, err := New(Options{Keys: store, Keyring: ring, CacheTTL: time.Hour, FlushInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	s := k.Reveal()
	if _, err := a.Authenticate(ctx, s); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAuthenticateCachedNoAllocs(t *testing.T) {
	store := newFakeStore()
	ring, _ := apikey.NewKeyring(pepper(1))
	k, _ := apikey.Generate(rand.Reader, apikey.EnvLive)
	h, v := ring.Hash(k)
	store.recs[k.ID()] = apikey.Record{ID: k.ID(), Hash: h, PepperVersion: v, Permissions: reqinfo.PermRead}
	a, _ := New(Options{Keys: store, Keyring: ring, CacheTTL: time.Hour, FlushInterval: -1})
	ctx := context.Background()
	s := k.Reveal()
	a.Authenticate(ctx, s)
	if n := testing.AllocsPerRun(100, func() { a.Authenticate(ctx, s) }); n != 0 {
		t.Fatalf("cached Authenticate allocates %v times", n)
	}
}
