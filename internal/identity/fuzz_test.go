package identity_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rampart-security/rampart/internal/identity"
)

func FuzzParseLoginRequest(f *testing.F) {
	for _, s := range []string{
		`{"username":"alice","password":"secret"}`,
		`{"username":"alice"}`,
		`{"username":1}`,
		`{"username":"a","password":"b","x":1}`,
		`{"username":"a"}{"password":"b"}`,
		`null`, `[]`, ``, `{"username":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := identity.ParseLoginRequest(body)
		if err != nil {
			return
		}
		if len(req.Username) > 256 || len(req.Password) > 1024 {
			t.Fatalf("oversized fields accepted: %d, %d", len(req.Username), len(req.Password))
		}
		// Whatever parses must be handled by Login without a panic; the
		// user does not exist, so it is refused.
		_, _ = identity.CanonicalUsername(req.Username)
	})
}

func FuzzAuthenticateToken(f *testing.F) {
	e := newEnv(f, nil)
	e.createUser("alice")
	tk := e.login("alice", goodPassword)
	for _, s := range []string{tk.AccessToken, tk.MFAToken, "a.b.c", "", "eyJhbGciOiJub25lIn0.e30.", tk.AccessToken + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := e.svc.AuthenticateToken(context.Background(), raw)
		if err == nil && raw != tk.AccessToken {
			// A different string can only verify if it decodes to the
			// same signed bytes (base64 malleability is refused by
			// strict decoding), so any other pass is a forgery.
			t.Fatalf("token %q accepted as %+v", raw, p)
		}
		if err != nil && !errors.Is(err, identity.ErrUnauthenticated) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}

func FuzzParseOpaque(f *testing.F) {
	for _, s := range []string{"rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "rt_", "rst_x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := identity.ParseOpaque(s, "rt_")
		if err == nil && len(h) != 32 {
			t.Fatalf("hash of %d bytes", len(h))
		}
	})
}
