package wsredis_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/wsgate"
	"github.com/rampart-security/rampart/internal/wsgate/wsredis"
)

// downClient points at a loopback port nothing listens on.
func downClient(t *testing.T) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", DialTimeout: time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRedisDown: with Redis unreachable, tickets are not issued (503) and
// cannot be redeemed, and a registry does not start. Nothing fails open.
func TestRedisDown(t *testing.T) {
	c := downClient(t)
	store, err := wsredis.NewTickets(c, wsredis.TicketsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := wsgate.NewTickets(wsgate.TicketsOptions{Store: store, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/ws/ticket", nil)
	req = req.WithContext(reqinfo.With(req.Context(), &reqinfo.Info{Principal: reqinfo.Principal{Kind: "api_key", ID: "k"}}))
	rec := httptest.NewRecorder()
	tk.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("ticket with Redis down: %d, want 503", rec.Code)
	}
	if _, err := store.Redeem(context.Background(), "k"); err == nil || errors.Is(err, wsgate.ErrTicketInvalid) {
		t.Errorf("redeem with Redis down: %v, want a store error", err)
	}
	if _, err := wsredis.NewRegistry(c, wsredis.RegistryOptions{Log: quiet}); err == nil {
		t.Error("registry started with Redis down")
	}
	rev, _ := wsredis.NewRevocations(c, wsredis.RevocationsOptions{Log: quiet})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := rev.Subscribe(ctx, func(wsgate.Revocation) {}); err == nil {
		t.Error("subscribed with Redis down")
	}
}

func TestRegistryOptions(t *testing.T) {
	c := downClient(t)
	for _, o := range []wsredis.RegistryOptions{
		{HeartbeatInterval: time.Millisecond},
		{HeartbeatInterval: time.Second, TTL: time.Second},
		{Instance: "a{b}"},
	} {
		if _, err := wsredis.NewRegistry(c, o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}
