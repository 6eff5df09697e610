package secrets

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	strongA = "3f9a1c7e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a"
	strongB = "b7e24c9a0d3f6b1e8c5a2f7d4b9e0c3a6f1d8b5e2a7c4f9d0b3e6a1c8f5d2b7e"
	strongC = "9c1e3a5f7b0d2e4c6a8f1b3d5e7c9a0f2b4d6e8a1c3f5b7d9e0a2c4f6b8d1e3a"
)

// mapEnv is an environment the test controls.
type mapEnv struct {
	mu sync.Mutex
	m  map[string]string
}

func (e *mapEnv) set(k, v string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v == "" {
		delete(e.m, k)
		return
	}
	e.m[k] = v
}

func (e *mapEnv) lookup(k string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.m[k]
	return v, ok
}

func counter(t *testing.T, reg *prometheus.Registry, name, secret string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "secret" && l.GetValue() == secret {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{secret=%q} not found", name, secret)
	return 0
}

func TestOpenProductionRefusals(t *testing.T) {
	env := &mapEnv{m: map[string]string{"GOOD": strongA, "DEFAULT": "dev-api-key-change-in-production", "SHORT": "k3J9xQ2mP7"}}
	var logBuf bytes.Buffer
	opts := Options{
		Production: true,
		Logger:     slog.New(slog.NewTextHandler(&logBuf, nil)),
		Providers:  map[Scheme]Provider{SchemeEnv: EnvProvider{LookupEnv: env.lookup}},
	}
	_, err := Open(context.Background(), []Spec{
		{Name: "api_key_pepper", Ref: "env:GOOD"},
		{Name: "jwt_key", Ref: "env:DEFAULT"},
		{Name: "cookie_key", Ref: "env:SHORT"},
		{Name: "audit_key", Ref: "your-secret-key-here-change-in-production"},
		{Name: "session_key", Ref: "env:MISSING"},
		{Name: "typo", Ref: "evn:X"},
	}, opts)
	if err == nil {
		t.Fatal("Open succeeded")
	}
	msg := err.Error()
	for _, want := range []string{
		`secret "jwt_key" is a known default`,
		`secret "cookie_key" is 10 bytes, shorter than the minimum 32`,
		`secret "audit_key": inline secret refused in production mode`,
		`secret "session_key" (env:MISSING): environment variable MISSING is not set`,
		`secret "typo": unknown secret scheme`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "api_key_pepper") {
		t.Errorf("good secret reported: %s", msg)
	}
	for _, v := range []string{"dev-api-key-change-in-production", "k3J9xQ2mP7", "your-secret-key-here"} {
		if strings.Contains(msg, v) || strings.Contains(logBuf.String(), v) {
			t.Errorf("value %q leaked", v)
		}
	}
	if !errors.Is(err, ErrInlineSecret) {
		t.Error("errors.Is(err, ErrInlineSecret) = false")
	}
}

// Every default named in both checklists stops a production start.
func TestOpenProductionRefusesChecklistDefaults(t *testing.T) {
	for _, d := range []string{"dev-api-key-change-in-production", "your-secret-key-here-change-in-production",
		"changeme", "secret", "password", "admin", "default", "test", "123456", "your-secret-key", "supersecret"} {
		env := &mapEnv{m: map[string]string{"K": d}}
		_, err := Open(context.Background(), []Spec{{Name: "k", Ref: "env:K"}}, Options{
			Production: true, Logger: slog.New(slog.DiscardHandler),
			Providers: map[Scheme]Provider{SchemeEnv: EnvProvider{LookupEnv: env.lookup}},
		})
		if err == nil || !strings.Contains(err.Error(), "known default") {
			t.Errorf("%q: %v", d, err)
		}
	}
}

func TestOpenDevelopmentWarns(t *testing.T) {
	var logBuf bytes.Buffer
	m, err := Open(context.Background(), []Spec{{Name: "jwt_key", Ref: "changeme"}}, Options{
		Logger: slog.New(slog.NewTextHandler(&logBuf, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(m.Warnings(), "\n")
	if !strings.Contains(w, "inline") || !strings.Contains(w, "known default") {
		t.Errorf("warnings = %q", w)
	}
	if string(m.Keyring("jwt_key").Current().Value.Bytes()) != "changeme" {
		t.Error("inline value not served in development")
	}
	if strings.Contains(logBuf.String(), "changeme") {
		t.Errorf("log leaks value: %s", logBuf.String())
	}
	if m.Keyring("nope") != nil {
		t.Error("unknown keyring not nil")
	}
}

type rotation struct{ name, id string }

func TestRefreshRotatesAndKeepsLastGood(t *testing.T) {
	env := &mapEnv{m: map[string]string{"PEPPER": strongA, "JWT": strongC}}
	reg := prometheus.NewRegistry()
	var rotations []rotation
	var failures []string
	m, err := Open(context.Background(), []Spec{{Name: "api_key_pepper", Ref: "env:PEPPER"}, {Name: "jwt_key", Ref: "env:JWT"}}, Options{
		Production:     true,
		Logger:         slog.New(slog.DiscardHandler),
		Registerer:     reg,
		Providers:      map[Scheme]Provider{SchemeEnv: EnvProvider{LookupEnv: env.lookup}},
		OnRotate:       func(name, id string) { rotations = append(rotations, rotation{name, id}) },
		OnRefreshError: func(name string, err error) { failures = append(failures, name) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kr := m.Keyring("api_key_pepper")
	idA := kr.Current().ID

	// Nothing changed: no rotation.
	if err := m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rotations) != 0 || counter(t, reg, "rampart_secret_rotations_total", "api_key_pepper") != 0 {
		t.Fatalf("rotation without change: %v", rotations)
	}

	// New value: current B, previous A, one rotation with B's ID.
	env.set("PEPPER", strongB)
	if err := m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if string(kr.Current().Value.Bytes()) != strongB {
		t.Fatal("current not rotated")
	}
	if p, ok := kr.Previous(); !ok || p.ID != idA {
		t.Fatalf("previous = %v %v, want %s", p, ok, idA)
	}
	if len(rotations) != 1 || rotations[0] != (rotation{"api_key_pepper", kr.Current().ID}) {
		t.Fatalf("rotations = %v", rotations)
	}
	if got := counter(t, reg, "rampart_secret_rotations_total", "api_key_pepper"); got != 1 {
		t.Errorf("rotations metric = %v", got)
	}

	// Provider failure: last good kept, failure counted, error names the secret.
	env.set("PEPPER", "")
	err = m.Refresh(ctx)
	if err == nil || !strings.Contains(err.Error(), `refresh secret "api_key_pepper"`) {
		t.Fatalf("refresh err = %v", err)
	}
	if string(kr.Current().Value.Bytes()) != strongB {
		t.Error("last good value lost")
	}
	if got := counter(t, reg, "rampart_secret_refresh_failures_total", "api_key_pepper"); got != 1 {
		t.Errorf("failures metric = %v", got)
	}
	if got := counter(t, reg, "rampart_secret_refresh_failures_total", "jwt_key"); got != 0 {
		t.Errorf("jwt_key failures = %v", got)
	}
	if len(failures) != 1 || failures[0] != "api_key_pepper" {
		t.Errorf("OnRefreshError calls = %v", failures)
	}

	// A weak new value is refused in production and the last good kept.
	env.set("PEPPER", "changeme")
	if err := m.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "known default") {
		t.Fatalf("weak rotation err = %v", err)
	}
	if string(kr.Current().Value.Bytes()) != strongB {
		t.Error("weak value accepted")
	}
	if got := counter(t, reg, "rampart_secret_refresh_failures_total", "api_key_pepper"); got != 2 {
		t.Errorf("failures metric = %v", got)
	}
}

// A provider that reports its own previous version (NAME_PREVIOUS) wins
// over the remembered old current, so every instance agrees.
func TestRefreshProviderPrevious(t *testing.T) {
	env := &mapEnv{m: map[string]string{"K": strongA}}
	m, err := Open(context.Background(), []Spec{{Name: "k", Ref: "env:K"}}, Options{
		Logger: slog.New(slog.DiscardHandler), Providers: map[Scheme]Provider{SchemeEnv: EnvProvider{LookupEnv: env.lookup}},
	})
	if err != nil {
		t.Fatal(err)
	}
	env.set("K", strongB)
	env.set("K_PREVIOUS", strongC)
	if err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	p, ok := m.Keyring("k").Previous()
	if !ok || string(p.Value.Bytes()) != strongC {
		t.Errorf("previous = %v", p)
	}
}

func TestManagerVaultFailures(t *testing.T) {
	fv := newFakeVault()
	fv.tokens["hvs.t"] = true
	fv.put("secret/gw", map[string]any{"pepper": strongA})
	srv := httptest.NewServer(fv)
	defer srv.Close()
	reg := prometheus.NewRegistry()
	opts := Options{
		Production: true, Logger: slog.New(slog.DiscardHandler), Registerer: reg,
		Vault: VaultOptions{Address: srv.URL, Token: NewSecret([]byte("hvs.t"))},
	}
	specs := []Spec{{Name: "api_key_pepper", Ref: "vault:secret/gw#pepper"}}

	// Sealed at start: a clear error.
	fv.sealed = true
	_, err := Open(context.Background(), specs, opts)
	if err == nil || !strings.Contains(err.Error(), `secret "api_key_pepper" (vault:secret/gw#pepper)`) || !strings.Contains(err.Error(), "Vault is sealed") {
		t.Fatalf("sealed start: %v", err)
	}
	fv.mu.Lock()
	fv.sealed = false
	fv.mu.Unlock()
	m, err := Open(context.Background(), specs, Options{
		Production: true, Logger: slog.New(slog.DiscardHandler), Registerer: reg, Vault: opts.Vault,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Rotated in Vault: version 2 current, version 1 previous.
	fv.put("secret/gw", map[string]any{"pepper": strongB})
	if err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	kr := m.Keyring("api_key_pepper")
	if kr.Current().ID != "2" || len(kr.All()) != 2 || kr.All()[1].ID != "1" {
		t.Fatalf("keyring after rotation: %v", kr.All())
	}
	// Permission revoked during a refresh: kept, counted.
	fv.mu.Lock()
	fv.tokens = map[string]bool{}
	fv.mu.Unlock()
	if err := m.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("refresh err = %v", err)
	}
	if kr.Current().ID != "2" {
		t.Error("last good lost")
	}
	if got := counter(t, reg, "rampart_secret_refresh_failures_total", "api_key_pepper"); got != 1 {
		t.Errorf("failures = %v", got)
	}
}

func TestManagerAWS(t *testing.T) {
	fake, _, endpoint := newFakeAWS(t)
	fake.set("rideshare/api-key", StageCurrent, smVersion{id: "v1", value: strongA})
	reg := prometheus.NewRegistry()
	m, err := Open(context.Background(), []Spec{{Name: "rideshare_api_key", Ref: "aws-sm:rideshare/api-key"}}, Options{
		Production: true, Logger: slog.New(slog.DiscardHandler), Registerer: reg,
		AWS: AWSOptions{Endpoint: endpoint, MaxAttempts: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Rotation the way Secrets Manager does it: AWSPREVIOUS moves to the old version.
	fake.set("rideshare/api-key", StagePrevious, smVersion{id: "v1", value: strongA})
	fake.set("rideshare/api-key", StageCurrent, smVersion{id: "v2", value: strongB})
	if err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	kr := m.Keyring("rideshare_api_key")
	if kr.Current().ID != "v2" || len(kr.All()) != 2 || kr.All()[1].ID != "v1" {
		t.Fatalf("keyring = %v", kr.All())
	}
	fake.mu.Lock()
	fake.fail = 500
	fake.mu.Unlock()
	if err := m.Refresh(context.Background()); err == nil {
		t.Fatal("refresh against failing endpoint succeeded")
	}
	if kr.Current().ID != "v2" || counter(t, reg, "rampart_secret_refresh_failures_total", "rideshare_api_key") != 1 {
		t.Error("last good lost or failure not counted")
	}
	// A missing secret at start is a clear error.
	_, err = Open(context.Background(), []Spec{{Name: "x", Ref: "aws-sm:nope"}}, Options{
		Logger: slog.New(slog.DiscardHandler), AWS: AWSOptions{Endpoint: endpoint, MaxAttempts: 1},
	})
	if err == nil || !strings.Contains(err.Error(), `secret "x" (aws-sm:nope)`) {
		t.Errorf("missing: %v", err)
	}
}

type fakeTicker struct{ c chan time.Time }

func (f fakeTicker) C() <-chan time.Time { return f.c }
func (f fakeTicker) Stop()               {}

func TestRunRefreshesOnTick(t *testing.T) {
	env := &mapEnv{m: map[string]string{"K": strongA}}
	tick := fakeTicker{c: make(chan time.Time)}
	rotated := make(chan string, 1)
	var gotInterval time.Duration
	m, err := Open(context.Background(), []Spec{{Name: "k", Ref: "env:K"}}, Options{
		Interval:  time.Minute,
		NewTicker: func(d time.Duration) Ticker { gotInterval = d; return tick },
		Logger:    slog.New(slog.DiscardHandler),
		Providers: map[Scheme]Provider{SchemeEnv: EnvProvider{LookupEnv: env.lookup}},
		OnRotate:  func(name, _ string) { rotated <- name },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	env.set("K", strongB)
	tick.c <- time.Now()
	if name := <-rotated; name != "k" {
		t.Errorf("rotated %q", name)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if gotInterval != time.Minute {
		t.Errorf("interval = %v", gotInterval)
	}
	if string(m.Keyring("k").Current().Value.Bytes()) != strongB {
		t.Error("not rotated")
	}
}

func TestRegisterTwiceReusesCollectors(t *testing.T) {
	env := &mapEnv{m: map[string]string{"K": strongA}}
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := Open(context.Background(), []Spec{{Name: "k", Ref: "env:K"}}, Options{
			Logger: slog.New(slog.DiscardHandler), Registerer: reg,
			Providers: map[Scheme]Provider{SchemeEnv: EnvProvider{LookupEnv: env.lookup}},
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// Removing the previous version the provider reported (FILE.previous,
// NAME_PREVIOUS) ends the overlap at the next refresh, and OnChange tells
// whoever copied the keys; a previous remembered from the old current
// stays until the next rotation.
func TestRefreshEndsOverlap(t *testing.T) {
	env := &mapEnv{m: map[string]string{"K": strongA, "R": strongA}}
	var changes []string
	m, err := Open(context.Background(), []Spec{{Name: "k", Ref: "env:K"}, {Name: "r", Ref: "env:R"}}, Options{
		Logger:    slog.New(slog.DiscardHandler),
		Providers: map[Scheme]Provider{SchemeEnv: EnvProvider{LookupEnv: env.lookup}},
		OnChange:  func(name string) { changes = append(changes, name) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	refresh := func() {
		t.Helper()
		if err := m.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	previous := func(name string) string {
		p, ok := m.Keyring(name).Previous()
		if !ok {
			return ""
		}
		return string(p.Value.Bytes())
	}

	// k rotates with the provider's previous; r by replacing the value only.
	env.set("K", strongB)
	env.set("K_PREVIOUS", strongA)
	env.set("R", strongB)
	refresh()
	if previous("k") != strongA || previous("r") != strongA {
		t.Fatalf("after rotation: previous k=%q r=%q", previous("k"), previous("r"))
	}
	if len(changes) != 2 {
		t.Fatalf("OnChange calls = %q, want k and r", changes)
	}

	// Nothing changed: no call.
	refresh()
	if len(changes) != 2 {
		t.Fatalf("OnChange without a change: %q", changes)
	}

	// The operator removes K_PREVIOUS: k's overlap ends, r's remembered
	// previous stays.
	env.set("K_PREVIOUS", "")
	refresh()
	if previous("k") != "" {
		t.Error("k still has the previous version the provider dropped")
	}
	if previous("r") != strongA {
		t.Error("r lost its remembered previous version")
	}
	if len(changes) != 3 || changes[2] != "k" {
		t.Errorf("OnChange calls = %q, want one more for k", changes)
	}
	if string(m.Keyring("k").Current().Value.Bytes()) != strongB {
		t.Error("k's current changed")
	}
}
