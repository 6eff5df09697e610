package wsredis_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/rampart-security/rampart/internal/redistest"
	"github.com/rampart-security/rampart/internal/wsgate"
	"github.com/rampart-security/rampart/internal/wsgate/wsgatetest"
	"github.com/rampart-security/rampart/internal/wsgate/wsredis"
)

var quiet = slog.New(slog.DiscardHandler)

// testClient connects to the test Redis (see redistest.Client).
func testClient(t testing.TB) *goredis.Client { return redistest.Client(t, 0) }

// testPrefix is a key prefix unique to the test (see redistest.Prefix).
func testPrefix(t testing.TB, c *goredis.Client) string { return redistest.Prefix(t, c) }

func newRegistry(t testing.TB, c *goredis.Client, o wsredis.RegistryOptions) *wsredis.Registry {
	t.Helper()
	if o.NewTicker == nil {
		o.NewTicker = wsgatetest.NewTicker().New // no heartbeats unless the test ticks
	}
	o.Log = quiet
	r, err := wsredis.NewRegistry(c, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func TestTicketsContract(t *testing.T) {
	c := testClient(t)
	wsgatetest.TicketStoreContract(t, func(t *testing.T) wsgate.TicketStore {
		s, err := wsredis.NewTickets(c, wsredis.TicketsOptions{Prefix: testPrefix(t, c)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestTicketsExpireInRedis(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	s, _ := wsredis.NewTickets(c, wsredis.TicketsOptions{Prefix: prefix})
	if err := s.Issue(context.Background(), "abc", wsgate.Grant{}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	ttl, err := c.PTTL(context.Background(), prefix+"wst:abc").Result()
	if err != nil || ttl <= 0 || ttl > 30*time.Second {
		t.Errorf("PTTL %s %v, want (0, 30s]", ttl, err)
	}
	if err := s.Issue(context.Background(), "abc", wsgate.Grant{}, 30*time.Second); err == nil {
		t.Error("a second ticket under the same key was accepted")
	}
}

func TestRegistryContract(t *testing.T) {
	c := testClient(t)
	wsgatetest.RegistryContract(t, func(t *testing.T) wsgate.Registry {
		return newRegistry(t, c, wsredis.RegistryOptions{Prefix: testPrefix(t, c)})
	})
}

// TestRegistryAcrossInstances: two registries on one prefix enforce one cap.
func TestRegistryAcrossInstances(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	a := newRegistry(t, c, wsredis.RegistryOptions{Prefix: prefix, Instance: "a"})
	b := newRegistry(t, c, wsredis.RegistryOptions{Prefix: prefix, Instance: "b"})
	ctx := context.Background()
	slot := func(i int) wsgate.Slot {
		return wsgate.Slot{Principal: "api_key:k", ConnID: fmt.Sprint(i), MaxPerPrincipal: 10, MaxTotal: 100}
	}
	for i := range 10 {
		r := a
		if i%2 == 1 {
			r = b
		}
		if err := r.Acquire(ctx, slot(i)); err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
	}
	for _, r := range []*wsredis.Registry{a, b} {
		if err := r.Acquire(ctx, slot(10)); !errors.Is(err, wsgate.ErrPrincipalLimit) {
			t.Errorf("11th on %s: %v", r.Instance(), err)
		}
	}
	// A clean close stops a's connections counting at once.
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := b.Acquire(ctx, slot(20+i)); err != nil {
			t.Fatalf("after a closed, acquire %d on b: %v", i, err)
		}
	}
	if err := b.Acquire(ctx, slot(30)); !errors.Is(err, wsgate.ErrPrincipalLimit) {
		t.Errorf("b over the cap on its own: %v", err)
	}
}

// TestCrashedInstanceExpires: an instance that stops heartbeating (a crash:
// no Close) stops counting once its heartbeat key expires in Redis.
func TestCrashedInstanceExpires(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ctx := context.Background()
	crashed, err := wsredis.NewRegistry(c, wsredis.RegistryOptions{Prefix: prefix, Instance: "crashed",
		HeartbeatInterval: 100 * time.Millisecond, TTL: 300 * time.Millisecond,
		NewTicker: wsgatetest.NewTicker().New, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	live := newRegistry(t, c, wsredis.RegistryOptions{Prefix: prefix, Instance: "live"})
	slot := wsgate.Slot{Principal: "api_key:k", MaxPerPrincipal: 3, MaxTotal: 3}
	for range 3 {
		if err := crashed.Acquire(ctx, slot); err != nil {
			t.Fatal(err)
		}
	}
	if err := live.Acquire(ctx, slot); !errors.Is(err, wsgate.ErrPrincipalLimit) {
		t.Fatalf("while the other instance is alive: %v", err)
	}
	// Wait for Redis to expire the heartbeat key (its own clock; nothing
	// here measures time).
	deadline := time.Now().Add(wsgatetest.Timeout)
	for c.Exists(ctx, prefix+"ws:{wsconns}:inst:crashed").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("heartbeat key never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 3 {
		if err := live.Acquire(ctx, slot); err != nil {
			t.Fatalf("after the crash, acquire %d: %v", i, err)
		}
	}
}

// TestHeartbeatRepairsCounts: each heartbeat writes the instance's own
// bookkeeping over whatever Redis holds.
func TestHeartbeatRepairsCounts(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	ticker := wsgatetest.NewTicker()
	r := newRegistry(t, c, wsredis.RegistryOptions{Prefix: prefix, Instance: "i1", NewTicker: ticker.New})
	ctx := context.Background()
	slot := wsgate.Slot{Principal: "api_key:k", MaxPerPrincipal: 5, MaxTotal: 5}
	for range 2 {
		if err := r.Acquire(ctx, slot); err != nil {
			t.Fatal(err)
		}
	}
	c.HSet(ctx, prefix+"ws:{wsconns}:p:api_key:k", "i1", 99) // a lost update
	if err := r.Acquire(ctx, slot); !errors.Is(err, wsgate.ErrPrincipalLimit) {
		t.Fatalf("with the corrupted count: %v", err)
	}
	ticker.Tick(t)
	ticker.Tick(t) // the first heartbeat has finished
	if got := c.HGet(ctx, prefix+"ws:{wsconns}:p:api_key:k", "i1").Val(); got != "2" {
		t.Errorf("count after heartbeat %q, want 2", got)
	}
	if err := r.Acquire(ctx, slot); err != nil {
		t.Errorf("after the heartbeat: %v", err)
	}
}

// instance is one rampart instance: a gate sharing Redis with the others.
type instance struct {
	*wsgatetest.Server
	closed chan wsgate.Event
}

func newInstance(t *testing.T, c *goredis.Client, prefix, name, upstream string, maxPer, maxTotal int) *instance {
	t.Helper()
	store, err := wsredis.NewTickets(c, wsredis.TicketsOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := wsgate.NewTickets(wsgate.TicketsOptions{Store: store, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := wsredis.NewRevocations(c, wsredis.RevocationsOptions{Prefix: prefix, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{closed: make(chan wsgate.Event, 1024)}
	g, err := wsgate.New(wsgate.Options{
		Tickets:         tk,
		Registry:        newRegistry(t, c, wsredis.RegistryOptions{Prefix: prefix, Instance: name}),
		Revocations:     rev,
		MaxPerPrincipal: maxPer,
		MaxTotal:        maxTotal,
		NewTicker:       wsgatetest.NewTicker().New,
		Log:             quiet,
		OnClose:         func(ev wsgate.Event) { in.closed <- ev },
	})
	if err != nil {
		t.Fatal(err)
	}
	in.Server = wsgatetest.NewServer(t, g, tk, wsgate.RouteOptions{Name: "ws", Upstream: upstream})
	return in
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wsgatetest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func echo(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.Write(ctxT(t), websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.Read(ctxT(t)); err != nil || string(got) != msg {
		t.Fatalf("echo %q: %q %v", msg, got, err)
	}
}

func closeCode(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	for {
		if _, _, err := c.Read(ctxT(t)); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func TestTwoInstances(t *testing.T) {
	c := testClient(t)
	up := wsgatetest.NewUpstream(t)

	t.Run("TicketFromAWorksOnceOnB", func(t *testing.T) {
		prefix := testPrefix(t, c)
		a := newInstance(t, c, prefix, "a", up.URL, 10, 100)
		b := newInstance(t, c, prefix, "b", up.URL, 10, 100)
		tk := a.Ticket(t, "k1")
		conn, _, err := b.Dial(ctxT(t), "/ws?ticket="+tk, nil)
		if err != nil {
			t.Fatalf("ticket from a on b: %v", err)
		}
		defer conn.CloseNow()
		echo(t, conn, "relayed by b")
		for name, s := range map[string]*instance{"a": a, "b": b} {
			_, resp, err := s.Dial(ctxT(t), "/ws?ticket="+tk, nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("replay on %s: %v %v, want 401", name, resp, err)
			}
		}
	})

	t.Run("CapsAreGlobal", func(t *testing.T) {
		prefix := testPrefix(t, c)
		a := newInstance(t, c, prefix, "a", up.URL, 10, 14)
		b := newInstance(t, c, prefix, "b", up.URL, 10, 14)
		for i := range 10 {
			s := a
			if i%2 == 1 {
				s = b
			}
			echo(t, s.Connect(t, "k1", nil), "x")
		}
		for name, s := range map[string]*instance{"a": a, "b": b} {
			if code := closeCode(t, s.Connect(t, "k1", nil)); code != websocket.StatusPolicyViolation {
				t.Errorf("11th k1 connection on %s: %d, want 1008", name, code)
			}
		}
		for _, s := range []*instance{a, a, b, b} {
			echo(t, s.Connect(t, "k2", nil), "y")
		}
		for name, s := range map[string]*instance{"a": a, "b": b} {
			if code := closeCode(t, s.Connect(t, "k3", nil)); code != websocket.StatusPolicyViolation {
				t.Errorf("15th connection on %s: %d, want 1008", name, code)
			}
		}
	})

	t.Run("CloseKeyEverywhere", func(t *testing.T) {
		prefix := testPrefix(t, c)
		a := newInstance(t, c, prefix, "a", up.URL, 10, 100)
		b := newInstance(t, c, prefix, "b", up.URL, 10, 100)
		onA, onB := a.Connect(t, "k_revoked", nil), b.Connect(t, "k_revoked", nil)
		keptA, keptB := a.Connect(t, "k_kept", nil), b.Connect(t, "k_kept", nil)
		for _, conn := range []*websocket.Conn{onA, onB, keptA, keptB} {
			echo(t, conn, "before")
		}
		a.Gate.CloseKey("k_revoked")
		for name, conn := range map[string]*websocket.Conn{"a": onA, "b": onB} {
			if code := closeCode(t, conn); code != websocket.StatusPolicyViolation {
				t.Errorf("revoked socket on %s: %d, want 1008", name, code)
			}
		}
		echo(t, keptA, "after")
		echo(t, keptB, "after")
		// The revoked key's slots are released on both instances.
		for _, s := range []*instance{a, b} {
			select {
			case ev := <-s.closed:
				if ev.Reason != wsgate.ReasonRevoked {
					t.Errorf("OnClose %+v", ev)
				}
			case <-time.After(wsgatetest.Timeout):
				t.Fatal("no OnClose")
			}
		}
		if got := c.HLen(context.Background(), prefix+"ws:{wsconns}:p:api_key:k_revoked").Val(); got != 0 {
			t.Errorf("revoked key still counted on %d instances", got)
		}
	})
}
