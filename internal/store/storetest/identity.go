package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rampart-security/rampart/internal/identity"
)

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func newUser(name string) identity.User {
	id := "u_" + newID()
	return identity.User{
		ID: id, Username: name, Email: name + "@example.com",
		PasswordHash: []byte("$2a$04$" + id), Status: identity.StatusActive,
		Roles: []string{"read", "write"}, CreatedAt: base, UpdatedAt: base, PasswordChangedAt: base,
	}
}

func mustCreateUser(t *testing.T, s identity.Store, name string) identity.User {
	t.Helper()
	u := newUser(name)
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u
}

func newSession(u identity.User, created time.Time) identity.Session {
	return identity.Session{ID: "s_" + newID(), UserID: u.ID, CreatedAt: created, LastSeenAt: created,
		ExpiresAt: created.Add(7 * 24 * time.Hour), ClientIP: "192.0.2.1", UserAgent: "test/1.0"}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

// Identity runs the identity store contract (users, failures, second
// factors, sessions, refresh and reset tokens). open must return a new,
// empty, migrated store.
func Identity(t *testing.T, open func(t *testing.T) identity.Store) {
	ctx := context.Background()

	t.Run("Users", func(t *testing.T) {
		s := open(t)
		alice := newUser("alice")
		alice.TOTPSecret, alice.TOTPPending = "JBSWY3DPEHPK3PXP", "KRSXG5CTMVRXEZLU"
		alice.LastLoginAt = base.Add(time.Minute)
		alice.LockedUntil = base.Add(time.Hour)
		if err := s.CreateUser(ctx, alice); err != nil {
			t.Fatal(err)
		}
		bob := newUser("bob")
		bob.Roles = []string{}
		bob.Email = ""
		bob.PasswordChangedAt = time.Time{}
		if err := s.CreateUser(ctx, bob); err != nil {
			t.Fatal(err)
		}
		for _, want := range []identity.User{alice, bob} {
			got, err := s.LookupUser(ctx, want.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("LookupUser(%s) (-want +got):\n%s", want.Username, d)
			}
			got, err = s.LookupUsername(ctx, want.Username)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("LookupUsername(%s) (-want +got):\n%s", want.Username, d)
			}
		}
		dupName := newUser("alice")
		wantErr(t, "duplicate username", s.CreateUser(ctx, dupName), identity.ErrConflict)
		dupID := newUser("carol")
		dupID.ID = alice.ID
		wantErr(t, "duplicate id", s.CreateUser(ctx, dupID), identity.ErrConflict)
		_, err := s.LookupUser(ctx, "u_nobody")
		wantErr(t, "lookup unknown", err, identity.ErrNotFound)
		_, err = s.LookupUsername(ctx, "nobody")
		wantErr(t, "lookup unknown name", err, identity.ErrNotFound)

		zed := mustCreateUser(t, s, "zed")
		list, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, u := range list {
			names = append(names, u.Username)
		}
		if d := cmp.Diff([]string{"alice", "bob", "zed"}, names); d != "" {
			t.Fatalf("ListUsers order (-want +got):\n%s", d)
		}

		upd := zed
		upd.Username, upd.Email, upd.PasswordHash = "zed2", "z@example.org", []byte("$2a$04$new")
		upd.Status, upd.Roles = identity.StatusLocked, []string{"admin"}
		upd.TOTPSecret, upd.TOTPPending = "SECRET", ""
		upd.UpdatedAt, upd.PasswordChangedAt = base.Add(time.Hour), base.Add(2*time.Hour)
		upd.LastLoginAt, upd.LockedUntil, upd.TOTPLastStep = base.Add(9*time.Hour), base.Add(9*time.Hour), 99
		if err := s.UpdateUser(ctx, upd); err != nil {
			t.Fatal(err)
		}
		got, err := s.LookupUser(ctx, zed.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := upd
		want.LastLoginAt, want.LockedUntil, want.TOTPLastStep = zed.LastLoginAt, zed.LockedUntil, zed.TOTPLastStep
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("after UpdateUser (-want +got):\n%s", d)
		}
		missing := newUser("ghost")
		wantErr(t, "update unknown", s.UpdateUser(ctx, missing), identity.ErrNotFound)
		wantErr(t, "rename onto taken name", s.UpdateUser(ctx, func() identity.User { u := upd; u.Username = "alice"; return u }()), identity.ErrConflict)

		if err := s.SetLockedUntil(ctx, bob.ID, base.Add(15*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.SetLastLogin(ctx, bob.ID, base.Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, _ = s.LookupUser(ctx, bob.ID)
		if !got.LockedUntil.Equal(base.Add(15*time.Minute)) || !got.LastLoginAt.Equal(base.Add(3*time.Minute)) {
			t.Fatalf("lockout/last login = %v / %v", got.LockedUntil, got.LastLoginAt)
		}
		if err := s.SetLockedUntil(ctx, bob.ID, time.Time{}); err != nil {
			t.Fatal(err)
		}
		got, _ = s.LookupUser(ctx, bob.ID)
		if !got.LockedUntil.IsZero() {
			t.Fatalf("lockout not cleared: %v", got.LockedUntil)
		}
		wantErr(t, "lock unknown", s.SetLockedUntil(ctx, "u_nobody", base), identity.ErrNotFound)
		wantErr(t, "last login unknown", s.SetLastLogin(ctx, "u_nobody", base), identity.ErrNotFound)

		if err := s.DeleteUser(ctx, bob.ID); err != nil {
			t.Fatal(err)
		}
		_, err = s.LookupUser(ctx, bob.ID)
		wantErr(t, "lookup deleted", err, identity.ErrNotFound)
		wantErr(t, "delete twice", s.DeleteUser(ctx, bob.ID), identity.ErrNotFound)
	})

	t.Run("Failures", func(t *testing.T) {
		s := open(t)
		u := mustCreateUser(t, s, "alice")
		const w = 15 * time.Minute
		tests := []struct {
			name string
			kind string
			at   time.Time
			want int
		}{
			{"first", identity.FailureLogin, base, 1},
			{"second", identity.FailureLogin, base.Add(time.Minute), 2},
			{"other kind independent", identity.FailureMFA, base.Add(time.Minute), 1},
			{"third inside window", identity.FailureLogin, base.Add(w - time.Second), 3},
			{"window over restarts", identity.FailureLogin, base.Add(w), 1},
			{"counts in new window", identity.FailureLogin, base.Add(w + time.Minute), 2},
		}
		for _, tt := range tests {
			n, err := s.CountFailure(ctx, u.ID, tt.kind, tt.at, w)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if n != tt.want {
				t.Fatalf("%s: CountFailure = %d, want %d", tt.name, n, tt.want)
			}
		}
		for _, c := range []struct {
			at   time.Time
			want int
		}{{base.Add(w + time.Minute), 2}, {base.Add(2*w - time.Second), 2}, {base.Add(2 * w), 0}} {
			n, err := s.FailureCount(ctx, u.ID, identity.FailureLogin, c.at, w)
			if err != nil || n != c.want {
				t.Fatalf("FailureCount at %v = %d, %v; want %d", c.at, n, err, c.want)
			}
		}
		if err := s.ResetFailures(ctx, u.ID, identity.FailureLogin); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.FailureCount(ctx, u.ID, identity.FailureLogin, base.Add(w+time.Minute), w); n != 0 {
			t.Fatalf("after reset FailureCount = %d", n)
		}
		if n, _ := s.FailureCount(ctx, u.ID, identity.FailureMFA, base.Add(time.Minute), w); n != 1 {
			t.Fatalf("reset of login touched mfa: %d", n)
		}
		_, err := s.CountFailure(ctx, "u_nobody", identity.FailureLogin, base, w)
		wantErr(t, "unknown user", err, identity.ErrNotFound)

		// Concurrent failures all count.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := s.CountFailure(ctx, u.ID, "burst", base, w); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n, _ := s.FailureCount(ctx, u.ID, "burst", base, w); n != 8 {
			t.Fatalf("8 concurrent failures counted %d", n)
		}
	})

	t.Run("TOTPStep", func(t *testing.T) {
		s := open(t)
		u := mustCreateUser(t, s, "alice")
		steps := []struct {
			step int64
			want error
		}{{100, nil}, {100, identity.ErrConflict}, {99, identity.ErrConflict}, {101, nil}, {0, identity.ErrConflict}}
		for _, st := range steps {
			err := s.UseTOTPStep(ctx, u.ID, st.step)
			if st.want == nil && err != nil || st.want != nil && !errors.Is(err, st.want) {
				t.Fatalf("UseTOTPStep(%d) = %v, want %v", st.step, err, st.want)
			}
		}
		got, _ := s.LookupUser(ctx, u.ID)
		if got.TOTPLastStep != 101 {
			t.Fatalf("TOTPLastStep = %d", got.TOTPLastStep)
		}
		wantErr(t, "unknown user", s.UseTOTPStep(ctx, "u_nobody", 5), identity.ErrNotFound)
	})

	t.Run("BackupCodes", func(t *testing.T) {
		s := open(t)
		u := mustCreateUser(t, s, "alice")
		other := mustCreateUser(t, s, "bob")
		if err := s.ReplaceBackupCodes(ctx, u.ID, [][]byte{hash("a"), hash("b"), hash("c")}); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceBackupCodes(ctx, other.ID, [][]byte{hash("x")}); err != nil {
			t.Fatal(err)
		}
		if err := s.UseBackupCode(ctx, u.ID, hash("b"), base); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "used twice", s.UseBackupCode(ctx, u.ID, hash("b"), base), identity.ErrNotFound)
		wantErr(t, "unknown code", s.UseBackupCode(ctx, u.ID, hash("zz"), base), identity.ErrNotFound)
		wantErr(t, "another user's code", s.UseBackupCode(ctx, u.ID, hash("x"), base), identity.ErrNotFound)
		codes, err := s.ListBackupCodes(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		used := 0
		for _, c := range codes {
			if !c.UsedAt.IsZero() {
				used++
				if !c.UsedAt.Equal(base) || string(c.Hash) != string(hash("b")) {
					t.Fatalf("used code = %+v", c)
				}
			}
		}
		if len(codes) != 3 || used != 1 {
			t.Fatalf("ListBackupCodes: %d codes, %d used", len(codes), used)
		}
		if err := s.ReplaceBackupCodes(ctx, u.ID, [][]byte{hash("b")}); err != nil {
			t.Fatal(err)
		}
		if err := s.UseBackupCode(ctx, u.ID, hash("b"), base); err != nil {
			t.Fatalf("replaced code unusable: %v", err)
		}
		if err := s.ReplaceBackupCodes(ctx, u.ID, nil); err != nil {
			t.Fatal(err)
		}
		if codes, _ := s.ListBackupCodes(ctx, u.ID); len(codes) != 0 {
			t.Fatalf("codes left after clearing: %d", len(codes))
		}
	})

	t.Run("ResetTokens", func(t *testing.T) {
		s := open(t)
		u := mustCreateUser(t, s, "alice")
		rt := identity.ResetToken{Hash: hash("reset-1"), UserID: u.ID, CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
		if err := s.CreateResetToken(ctx, rt); err != nil {
			t.Fatal(err)
		}
		expired := identity.ResetToken{Hash: hash("reset-2"), UserID: u.ID, CreatedAt: base, ExpiresAt: base.Add(time.Minute)}
		if err := s.CreateResetToken(ctx, expired); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "duplicate", s.CreateResetToken(ctx, rt), identity.ErrConflict)
		wantErr(t, "unknown user", s.CreateResetToken(ctx, identity.ResetToken{Hash: hash("r3"), UserID: "u_nobody",
			CreatedAt: base, ExpiresAt: base.Add(time.Hour)}), identity.ErrNotFound)
		got, err := s.ConsumeResetToken(ctx, rt.Hash, base.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		want := rt
		want.UsedAt = base.Add(time.Minute)
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("ConsumeResetToken (-want +got):\n%s", d)
		}
		_, err = s.ConsumeResetToken(ctx, rt.Hash, base.Add(2*time.Minute))
		wantErr(t, "consume twice", err, identity.ErrNotFound)
		_, err = s.ConsumeResetToken(ctx, expired.Hash, base.Add(time.Minute))
		wantErr(t, "consume at expiry", err, identity.ErrNotFound)
		_, err = s.ConsumeResetToken(ctx, hash("nope"), base)
		wantErr(t, "consume unknown", err, identity.ErrNotFound)
	})

	t.Run("Sessions", func(t *testing.T) {
		s := open(t)
		u := mustCreateUser(t, s, "alice")
		other := mustCreateUser(t, s, "bob")
		s1 := newSession(u, base)
		s1.MFA = true
		s2 := newSession(u, base.Add(time.Minute))
		s3 := newSession(u, base.Add(2*time.Minute))
		s3.RevokedAt = base.Add(3 * time.Minute)
		so := newSession(other, base)
		for _, x := range []identity.Session{s2, s1, s3, so} {
			if err := s.CreateSession(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		wantErr(t, "duplicate", s.CreateSession(ctx, s1), identity.ErrConflict)
		orphan := newSession(identity.User{ID: "u_nobody"}, base)
		wantErr(t, "unknown user", s.CreateSession(ctx, orphan), identity.ErrNotFound)
		got, err := s.LookupSession(ctx, s1.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(s1, got); d != "" {
			t.Fatalf("LookupSession (-want +got):\n%s", d)
		}
		_, err = s.LookupSession(ctx, "s_nope")
		wantErr(t, "lookup unknown", err, identity.ErrNotFound)
		list, err := s.ListSessions(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]identity.Session{s1, s2, s3}, list); d != "" {
			t.Fatalf("ListSessions (-want +got):\n%s", d)
		}
		if err := s.TouchSession(ctx, s2.ID, base.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "touch unknown", s.TouchSession(ctx, "s_nope", base), identity.ErrNotFound)
		if err := s.RevokeSession(ctx, s2.ID, base.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeSession(ctx, s2.ID, base.Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, _ = s.LookupSession(ctx, s2.ID)
		if !got.LastSeenAt.Equal(base.Add(time.Hour)) || !got.RevokedAt.Equal(base.Add(2*time.Hour)) {
			t.Fatalf("touched/revoked session = %+v", got)
		}
		wantErr(t, "revoke unknown", s.RevokeSession(ctx, "s_nope", base), identity.ErrNotFound)

		s4 := newSession(u, base.Add(4*time.Minute))
		s5 := newSession(u, base.Add(5*time.Minute))
		for _, x := range []identity.Session{s4, s5} {
			if err := s.CreateSession(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.RevokeUserSessions(ctx, u.ID, s5.ID, base.Add(time.Hour))
		if err != nil || n != 2 { // s1 and s4; s2, s3 already revoked; s5 kept
			t.Fatalf("RevokeUserSessions = %d, %v; want 2", n, err)
		}
		for id, live := range map[string]bool{s1.ID: false, s4.ID: false, s5.ID: true, so.ID: true} {
			got, _ := s.LookupSession(ctx, id)
			if got.RevokedAt.IsZero() != live {
				t.Fatalf("session %s revoked=%v, want live=%v", id, got.RevokedAt, live)
			}
		}
		n, err = s.RevokeUserSessions(ctx, u.ID, "", base.Add(time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("RevokeUserSessions all = %d, %v; want 1", n, err)
		}
	})

	t.Run("RefreshTokens", func(t *testing.T) {
		s := open(t)
		u := mustCreateUser(t, s, "alice")
		sess := newSession(u, base)
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		rt := identity.RefreshToken{Hash: hash("rt-1"), SessionID: sess.ID, UserID: u.ID, IssuedAt: base, ExpiresAt: base.Add(time.Hour)}
		if err := s.CreateRefreshToken(ctx, rt); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "duplicate", s.CreateRefreshToken(ctx, rt), identity.ErrConflict)
		wantErr(t, "unknown session", s.CreateRefreshToken(ctx, identity.RefreshToken{Hash: hash("rt-x"),
			SessionID: "s_nope", UserID: u.ID, IssuedAt: base, ExpiresAt: base.Add(time.Hour)}), identity.ErrNotFound)
		got, fresh, err := s.ConsumeRefreshToken(ctx, rt.Hash, base.Add(time.Minute))
		if err != nil || !fresh {
			t.Fatalf("first consume: fresh=%v err=%v", fresh, err)
		}
		want := rt
		want.UsedAt = base.Add(time.Minute)
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("ConsumeRefreshToken (-want +got):\n%s", d)
		}
		got, fresh, err = s.ConsumeRefreshToken(ctx, rt.Hash, base.Add(time.Hour))
		if err != nil || fresh {
			t.Fatalf("second consume: fresh=%v err=%v", fresh, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("reused token keeps its first use (-want +got):\n%s", d)
		}
		_, _, err = s.ConsumeRefreshToken(ctx, hash("nope"), base)
		wantErr(t, "unknown", err, identity.ErrNotFound)

		// Of concurrent uses of one token exactly one is fresh.
		race := identity.RefreshToken{Hash: hash("rt-race"), SessionID: sess.ID, UserID: u.ID, IssuedAt: base, ExpiresAt: base.Add(time.Hour)}
		if err := s.CreateRefreshToken(ctx, race); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		freshCount := 0
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				_, f, err := s.ConsumeRefreshToken(ctx, race.Hash, base.Add(time.Duration(i)*time.Second))
				if err != nil {
					t.Error(err)
					return
				}
				if f {
					mu.Lock()
					freshCount++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if freshCount != 1 {
			t.Fatalf("%d concurrent consumers saw the token fresh, want 1", freshCount)
		}
	})

	t.Run("DeleteCascades", func(t *testing.T) {
		s := open(t)
		u := mustCreateUser(t, s, "alice")
		sess := newSession(u, base)
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		rt := identity.RefreshToken{Hash: hash("rt"), SessionID: sess.ID, UserID: u.ID, IssuedAt: base, ExpiresAt: base.Add(time.Hour)}
		steps := []error{
			s.CreateRefreshToken(ctx, rt),
			s.ReplaceBackupCodes(ctx, u.ID, [][]byte{hash("c")}),
			s.CreateResetToken(ctx, identity.ResetToken{Hash: hash("r"), UserID: u.ID, CreatedAt: base, ExpiresAt: base.Add(time.Hour)}),
			func() error { _, err := s.CountFailure(ctx, u.ID, identity.FailureLogin, base, time.Hour); return err }(),
			s.DeleteUser(ctx, u.ID),
		}
		for i, err := range steps {
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		_, err := s.LookupSession(ctx, sess.ID)
		wantErr(t, "session after delete", err, identity.ErrNotFound)
		_, _, err = s.ConsumeRefreshToken(ctx, rt.Hash, base)
		wantErr(t, "refresh token after delete", err, identity.ErrNotFound)
		_, err = s.ConsumeResetToken(ctx, hash("r"), base)
		wantErr(t, "reset token after delete", err, identity.ErrNotFound)
		if codes, err := s.ListBackupCodes(ctx, u.ID); err != nil || len(codes) != 0 {
			t.Fatalf("backup codes after delete: %d, %v", len(codes), err)
		}
		// The username is free again.
		if err := s.CreateUser(ctx, newUser("alice")); err != nil {
			t.Fatalf("recreate after delete: %v", err)
		}
	})

	t.Run("TrustedDevices", func(t *testing.T) {
		s := open(t)
		u := mustCreateUser(t, s, "alice")
		other := mustCreateUser(t, s, "bob")
		d1 := identity.TrustedDevice{Hash: hash("dev-1"), UserID: u.ID, CreatedAt: base, ExpiresAt: base.Add(30 * 24 * time.Hour), UserAgent: "Firefox"}
		d2 := identity.TrustedDevice{Hash: hash("dev-2"), UserID: u.ID, CreatedAt: base.Add(time.Hour), ExpiresAt: base.Add(31 * 24 * time.Hour)}
		do := identity.TrustedDevice{Hash: hash("dev-o"), UserID: other.ID, CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
		for _, d := range []identity.TrustedDevice{d2, d1, do} {
			if err := s.CreateTrustedDevice(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		wantErr(t, "duplicate", s.CreateTrustedDevice(ctx, d1), identity.ErrConflict)
		wantErr(t, "unknown user", s.CreateTrustedDevice(ctx, identity.TrustedDevice{Hash: hash("x"), UserID: "u_nobody",
			CreatedAt: base, ExpiresAt: base.Add(time.Hour)}), identity.ErrNotFound)
		got, err := s.LookupTrustedDevice(ctx, d1.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(d1, got); d != "" {
			t.Fatalf("LookupTrustedDevice (-want +got):\n%s", d)
		}
		_, err = s.LookupTrustedDevice(ctx, hash("nope"))
		wantErr(t, "lookup unknown", err, identity.ErrNotFound)
		list, err := s.ListTrustedDevices(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]identity.TrustedDevice{d1, d2}, list); d != "" {
			t.Fatalf("ListTrustedDevices (-want +got):\n%s", d)
		}
		n, err := s.RevokeTrustedDevices(ctx, u.ID, base.Add(2*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("RevokeTrustedDevices = %d, %v; want 2", n, err)
		}
		if n, _ := s.RevokeTrustedDevices(ctx, u.ID, base.Add(3*time.Hour)); n != 0 {
			t.Fatalf("second revoke = %d", n)
		}
		got, _ = s.LookupTrustedDevice(ctx, d1.Hash)
		if !got.RevokedAt.Equal(base.Add(2 * time.Hour)) {
			t.Fatalf("revoked at %v", got.RevokedAt)
		}
		if got, _ := s.LookupTrustedDevice(ctx, do.Hash); !got.RevokedAt.IsZero() {
			t.Fatal("another user's device revoked")
		}
		if err := s.DeleteUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		_, err = s.LookupTrustedDevice(ctx, d1.Hash)
		wantErr(t, "device after user delete", err, identity.ErrNotFound)
	})

	t.Run("Prune", func(t *testing.T) {
		s := open(t)
		u := mustCreateUser(t, s, "alice")
		expired := newSession(u, base)
		expired.ExpiresAt = base.Add(time.Hour)
		revoked := newSession(u, base)
		revoked.RevokedAt = base.Add(time.Minute)
		live := newSession(u, base)
		for _, x := range []identity.Session{expired, revoked, live} {
			if err := s.CreateSession(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		rt := identity.RefreshToken{Hash: hash("old"), SessionID: expired.ID, UserID: u.ID, IssuedAt: base, ExpiresAt: base.Add(time.Hour)}
		if err := s.CreateRefreshToken(ctx, rt); err != nil {
			t.Fatal(err)
		}
		n, err := s.PruneSessions(ctx, base.Add(2*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("PruneSessions = %d, %v; want 2", n, err)
		}
		list, _ := s.ListSessions(ctx, u.ID)
		if len(list) != 1 || list[0].ID != live.ID {
			t.Fatalf("after prune: %v", list)
		}
		_, _, err = s.ConsumeRefreshToken(ctx, rt.Hash, base)
		wantErr(t, "pruned session's refresh token", err, identity.ErrNotFound)
	})
}
