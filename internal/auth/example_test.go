package auth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/auth"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

// memKeys is a one-key store for the example.
type memKeys map[string]apikey.Record

func (m memKeys) LookupKey(_ context.Context, id string) (apikey.Record, error) {
	if rec, ok := m[id]; ok {
		return rec, nil
	}
	return apikey.Record{}, apikey.ErrNotFound
}

func ExampleAuthenticator_Middleware() {
	ring, _ := apikey.NewKeyring(apikey.Pepper{Version: 1, Secret: bytes.Repeat([]byte("p"), 32)})
	key, _ := apikey.Generate(rand.Reader, apikey.EnvLive)
	hash, version := ring.Hash(key)
	keys := memKeys{key.ID(): {ID: key.ID(), Name: "reader", Hash: hash, PepperVersion: version, Permissions: reqinfo.PermRead}}

	authn, err := auth.New(auth.Options{
		Keys:    keys,
		Keyring: ring,
		Policy: func(r *http.Request) auth.Policy {
			if r.URL.Path == "/health" {
				return auth.Policy{Auth: auth.AuthNone}
			}
			return auth.Policy{Auth: auth.AuthAPIKey, Permission: auth.PermissionByMethod}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer authn.Close(context.Background())

	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("upstream sees permissions:", r.Header.Get(auth.HeaderPermissions))
	})
	h := authn.Middleware(upstream)

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		r := httptest.NewRequest(method, "/rides", nil)
		r.Header.Set("Authorization", "Bearer "+key.Reveal())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(method, w.Code)
	}
	// Output:
	// upstream sees permissions: read
	// GET 200
	// POST 403
}
