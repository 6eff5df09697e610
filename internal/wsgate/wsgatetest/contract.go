// Package wsgatetest holds what the tests of wsgate and its backends share:
// the contracts every TicketStore and Registry pass, a real upstream
// WebSocket server, a gate served on loopback, and manual clocks.
package wsgatetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/wsgate"
)

// TicketStoreContract runs the TicketStore contract against stores from
// open, called once per subtest.
func TicketStoreContract(t *testing.T, open func(t *testing.T) wsgate.TicketStore) {
	ctx := context.Background()
	grant := wsgate.Grant{
		Principal: reqinfo.Principal{Kind: "api_key", ID: "k_contract", Name: "contract", Permissions: reqinfo.PermRead | reqinfo.PermWrite, SessionID: "s1"},
		ClientIP:  netip.MustParseAddr("192.0.2.7"),
		Origin:    "https://app.example",
		ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	t.Run("RedeemOnce", func(t *testing.T) {
		s := open(t)
		if err := s.Issue(ctx, "k1", grant, time.Minute); err != nil {
			t.Fatal(err)
		}
		got, err := s.Redeem(ctx, "k1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(grant, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
			t.Errorf("grant (-issued +redeemed):\n%s", diff)
		}
		if _, err := s.Redeem(ctx, "k1"); !errors.Is(err, wsgate.ErrTicketInvalid) {
			t.Errorf("second redeem: %v, want ErrTicketInvalid", err)
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		s := open(t)
		if _, err := s.Redeem(ctx, "never-issued"); !errors.Is(err, wsgate.ErrTicketInvalid) {
			t.Errorf("redeem unknown: %v, want ErrTicketInvalid", err)
		}
	})
	t.Run("UnboundGrant", func(t *testing.T) {
		s := open(t)
		g := wsgate.Grant{Principal: grant.Principal, ExpiresAt: grant.ExpiresAt}
		if err := s.Issue(ctx, "k2", g, time.Minute); err != nil {
			t.Fatal(err)
		}
		got, err := s.Redeem(ctx, "k2")
		if err != nil {
			t.Fatal(err)
		}
		if got.ClientIP.IsValid() || got.Origin != "" {
			t.Errorf("unbound grant came back bound: %+v", got)
		}
	})
	t.Run("ConcurrentRedeemOneWinner", func(t *testing.T) {
		s := open(t)
		for i := range 20 {
			if err := s.Issue(ctx, fmt.Sprintf("c%d", i), grant, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		var wins [20]atomic.Int32
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for i := range 20 {
					_, err := s.Redeem(ctx, fmt.Sprintf("c%d", i))
					switch {
					case err == nil:
						wins[i].Add(1)
					case !errors.Is(err, wsgate.ErrTicketInvalid):
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		for i := range wins {
			if n := wins[i].Load(); n != 1 {
				t.Errorf("ticket c%d redeemed %d times", i, n)
			}
		}
	})
}

// RegistryContract runs the Registry contract against registries from open,
// called once per subtest. Registries from one call share no state.
func RegistryContract(t *testing.T, open func(t *testing.T) wsgate.Registry) {
	ctx := context.Background()
	slot := func(p string, i int) wsgate.Slot {
		return wsgate.Slot{Principal: p, ConnID: fmt.Sprintf("%s-%d", p, i), MaxPerPrincipal: 10, MaxTotal: 25}
	}
	t.Run("PerPrincipalCap", func(t *testing.T) {
		r := open(t)
		for i := range 10 {
			if err := r.Acquire(ctx, slot("api_key:a", i)); err != nil {
				t.Fatalf("acquire %d: %v", i+1, err)
			}
		}
		if err := r.Acquire(ctx, slot("api_key:a", 10)); !errors.Is(err, wsgate.ErrPrincipalLimit) {
			t.Fatalf("11th: %v, want ErrPrincipalLimit", err)
		}
		if err := r.Acquire(ctx, slot("api_key:b", 0)); err != nil {
			t.Fatalf("other principal: %v", err)
		}
		if err := r.Release(ctx, slot("api_key:a", 3)); err != nil {
			t.Fatal(err)
		}
		if err := r.Acquire(ctx, slot("api_key:a", 11)); err != nil {
			t.Fatalf("after a release: %v", err)
		}
	})
	t.Run("GlobalCap", func(t *testing.T) {
		r := open(t)
		n := 0
		for p := 0; n < 25; p++ {
			for i := 0; i < 5 && n < 25; i++ {
				if err := r.Acquire(ctx, slot(fmt.Sprintf("api_key:g%d", p), i)); err != nil {
					t.Fatalf("acquire %d: %v", n+1, err)
				}
				n++
			}
		}
		if err := r.Acquire(ctx, slot("api_key:fresh", 0)); !errors.Is(err, wsgate.ErrGlobalLimit) {
			t.Fatalf("26th: %v, want ErrGlobalLimit", err)
		}
		if err := r.Release(ctx, slot("api_key:g0", 0)); err != nil {
			t.Fatal(err)
		}
		if err := r.Acquire(ctx, slot("api_key:fresh", 0)); err != nil {
			t.Fatalf("after a release: %v", err)
		}
	})
	t.Run("NoCaps", func(t *testing.T) {
		r := open(t)
		for i := range 30 {
			if err := r.Acquire(ctx, wsgate.Slot{Principal: "api_key:u", ConnID: fmt.Sprint(i)}); err != nil {
				t.Fatalf("acquire %d: %v", i, err)
			}
		}
	})
	t.Run("ConcurrentExactCap", func(t *testing.T) {
		r := open(t)
		var ok atomic.Int32
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := range 5 {
					err := r.Acquire(ctx, slot("api_key:race", w*10+i))
					switch {
					case err == nil:
						ok.Add(1)
					case !errors.Is(err, wsgate.ErrPrincipalLimit):
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if n := ok.Load(); n != 10 {
			t.Errorf("%d of 40 concurrent acquires admitted, want exactly 10", n)
		}
	})
}
