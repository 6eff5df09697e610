package identity_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-security/rampart/internal/identity"
)

func TestAccessTokenRefusals(t *testing.T) {
	e := newEnv(t, nil)
	u := e.createUser("alice")
	tk := e.login("alice", goodPassword)
	now := e.clock.Now()
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": "rampart", "aud": "rampart", "sub": u.ID, "sid": tk.SessionID, "typ": "access",
			"jti": "j1", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
			"name": "alice", "roles": []string{"read"},
		}
	}
	sign := func(c jwt.MapClaims, method jwt.SigningMethod, kid string, key any) string {
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	with := func(k string, v any) jwt.MapClaims {
		c := valid()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	seg := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	hs := jwt.SigningMethodHS256
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", sign(valid(), hs, "k1", testKey.Secret), true},
		{"alg none", seg(map[string]string{"alg": "none", "typ": "JWT", "kid": "k1"}) + "." + seg(valid()) + ".", false},
		{"alg none unsafe", sign(valid(), jwt.SigningMethodNone, "k1", jwt.UnsafeAllowNoneSignatureType), false},
		{"HS512", sign(valid(), jwt.SigningMethodHS512, "k1", testKey.Secret), false},
		{"unknown kid", sign(valid(), hs, "k9", testKey.Secret), false},
		{"no kid", sign(valid(), hs, "", testKey.Secret), false},
		{"wrong key", sign(valid(), hs, "k1", bytes.Repeat([]byte("x"), 32)), false},
		{"wrong audience", sign(with("aud", "someone-else"), hs, "k1", testKey.Secret), false},
		{"mfa audience", sign(with("aud", "rampart#mfa"), hs, "k1", testKey.Secret), false},
		{"wrong issuer", sign(with("iss", "evil"), hs, "k1", testKey.Secret), false},
		{"expired", sign(with("exp", now.Add(-time.Second).Unix()), hs, "k1", testKey.Secret), false},
		{"no exp", sign(with("exp", nil), hs, "k1", testKey.Secret), false},
		{"not yet valid", sign(with("nbf", now.Add(time.Minute).Unix()), hs, "k1", testKey.Secret), false},
		{"no nbf", sign(with("nbf", nil), hs, "k1", testKey.Secret), false},
		{"issued in the future", sign(with("iat", now.Add(time.Minute).Unix()), hs, "k1", testKey.Secret), false},
		{"no iat", sign(with("iat", nil), hs, "k1", testKey.Secret), false},
		{"no jti", sign(with("jti", nil), hs, "k1", testKey.Secret), false},
		{"mfa type", sign(with("typ", "mfa"), hs, "k1", testKey.Secret), false},
		{"no type", sign(with("typ", nil), hs, "k1", testKey.Secret), false},
		{"unknown session", sign(with("sid", "s_nope"), hs, "k1", testKey.Secret), false},
		{"session of another user", sign(with("sub", "u_other"), hs, "k1", testKey.Secret), false},
		{"tampered payload", func() string {
			parts := strings.Split(sign(valid(), hs, "k1", testKey.Secret), ".")
			return parts[0] + "." + seg(with("roles", []string{"admin"})) + "." + parts[2]
		}(), false},
		{"garbage", "not.a.jwt", false},
		{"empty", "", false},
		{"huge", strings.Repeat("a", 10000), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.AuthenticateToken(context.Background(), tt.token)
			if (err == nil) != tt.ok {
				t.Fatalf("AuthenticateToken err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, identity.ErrUnauthenticated) {
				t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	k2 := identity.Key{ID: "k2", Secret: bytes.Repeat([]byte("2"), 32)}
	e := newEnv(t, nil) // signs with k1
	e.createUser("alice")
	tk := e.login("alice", goodPassword)
	build := func(keys ...identity.Key) *identity.Service {
		s, err := identity.New(identity.Options{Store: e.store, Keys: keys, Now: e.clock.Now, BcryptCost: 4})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := build(k2, testKey).AuthenticateToken(context.Background(), tk.AccessToken); err != nil {
		t.Fatalf("previous key no longer verifies: %v", err)
	}
	if _, err := build(k2).AuthenticateToken(context.Background(), tk.AccessToken); err == nil {
		t.Fatal("retired key still verifies")
	}
	// New tokens carry the new kid.
	rotated := build(k2, testKey)
	res, err := rotated.Login(context.Background(), "alice", goodPassword, identity.ClientMeta{})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := jwt.NewParser().ParseUnverified(res.Tokens.AccessToken, jwt.MapClaims{})
	if err != nil || tok.Header["kid"] != "k2" || tok.Header["alg"] != "HS256" {
		t.Fatalf("header = %v, %v", tok.Header, err)
	}
}

func TestOptionsValidation(t *testing.T) {
	s := openStore(t)
	tests := []struct {
		name string
		mod  func(*identity.Options)
	}{
		{"no store", func(o *identity.Options) { o.Store = nil }},
		{"no keys", func(o *identity.Options) { o.Keys = nil }},
		{"short key", func(o *identity.Options) { o.Keys = []identity.Key{{ID: "a", Secret: []byte("short")}} }},
		{"empty kid", func(o *identity.Options) { o.Keys = []identity.Key{{Secret: testKey.Secret}} }},
		{"duplicate kid", func(o *identity.Options) { o.Keys = []identity.Key{testKey, testKey} }},
		{"negative ttl", func(o *identity.Options) { o.AccessTTL = -time.Minute }},
		{"sub-second window", func(o *identity.Options) { o.MFAWindow = time.Millisecond }},
		{"negative sessions", func(o *identity.Options) { o.MaxSessions = -1 }},
		{"base path", func(o *identity.Options) { o.BasePath = "/auth" }},
		{"bcrypt cost", func(o *identity.Options) { o.BcryptCost = 40 }},
		{"short min length", func(o *identity.Options) { o.Policy.MinLength = 4 }},
		{"unknown MFA role", func(o *identity.Options) { o.MFARequiredRoles = []string{"root"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := identity.Options{Store: s, Keys: []identity.Key{testKey}, BcryptCost: 4}
			tt.mod(&o)
			if _, err := identity.New(o); err == nil {
				t.Fatal("New accepted bad options")
			}
		})
	}
}
