package wsgate_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rampart-security/rampart/internal/ratelimit"
	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/wsgate"
	"github.com/rampart-security/rampart/internal/wsgate/wsgatetest"
)

var quiet = slog.New(slog.DiscardHandler)

// events records hook calls.
type events struct {
	mu      sync.Mutex
	opened  []wsgate.Event
	refused []wsgate.Event
	closed  chan wsgate.Event
}

func newEvents() *events { return &events{closed: make(chan wsgate.Event, 4096)} }

func (e *events) hook(o *wsgate.Options) {
	o.OnOpen = func(ev wsgate.Event) { e.mu.Lock(); e.opened = append(e.opened, ev); e.mu.Unlock() }
	o.OnRefuse = func(ev wsgate.Event) { e.mu.Lock(); e.refused = append(e.refused, ev); e.mu.Unlock() }
	o.OnClose = func(ev wsgate.Event) { e.closed <- ev }
}

func (e *events) nextClose(t *testing.T) wsgate.Event {
	t.Helper()
	select {
	case ev := <-e.closed:
		return ev
	case <-time.After(wsgatetest.Timeout):
		t.Fatal("no OnClose")
		return wsgate.Event{}
	}
}

type env struct {
	*wsgatetest.Server
	up     *wsgatetest.Upstream
	clock  *wsgatetest.Clock
	ticker *wsgatetest.Ticker
	ev     *events
}

// newEnv serves a gate in front of a fresh upstream with a manual clock and
// ticker; tweak adjusts the options.
func newEnv(t *testing.T, tweak func(*wsgate.Options, *wsgate.RouteOptions)) *env {
	t.Helper()
	e := &env{up: wsgatetest.NewUpstream(t), clock: wsgatetest.NewClock(), ticker: wsgatetest.NewTicker(), ev: newEvents()}
	tk := newTickets(t, wsgate.TicketsOptions{Now: e.clock.Now, Log: quiet})
	o := wsgate.Options{Tickets: tk, Now: e.clock.Now, NewTicker: e.ticker.New, Log: quiet}
	e.ev.hook(&o)
	ro := wsgate.RouteOptions{Name: "ws", Upstream: e.up.URL}
	if tweak != nil {
		tweak(&o, &ro)
	}
	g, err := wsgate.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.Server = wsgatetest.NewServer(t, g, tk, ro)
	return e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wsgatetest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// closeCode reads until c ends and returns the close code received (-1 for
// none) and the reason.
func closeCode(t *testing.T, c *websocket.Conn) (websocket.StatusCode, string) {
	t.Helper()
	for {
		_, _, err := c.Read(ctxT(t))
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("connection not closed")
			}
			return -1, ""
		}
	}
}

func echo(t *testing.T, c *websocket.Conn, typ websocket.MessageType, msg []byte) {
	t.Helper()
	ctx := ctxT(t)
	if err := c.Write(ctx, typ, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	gt, got, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if gt != typ || !bytes.Equal(got, msg) {
		t.Fatalf("echo: type %v len %d, want %v len %d", gt, len(got), typ, len(msg))
	}
}

func TestHandshakeRefusals(t *testing.T) {
	e := newEnv(t, func(o *wsgate.Options, ro *wsgate.RouteOptions) {
		o.CheckOrigin = func(origin string) bool { return origin == "https://app.example" }
	})
	used := e.Ticket(t, "k1")
	if c, _, err := e.Dial(ctxT(t), "/ws?ticket="+used, nil); err != nil {
		t.Fatal(err)
	} else {
		_ = c.Close(websocket.StatusNormalClosure, "")
	}
	expired := e.Ticket(t, "k1")
	e.clock.Advance(31 * time.Second)
	tests := []struct {
		name    string
		query   string
		header  http.Header
		status  int
		outcome string
	}{
		{"no ticket", "", nil, 401, wsgate.OutcomeTicketMissing},
		{"empty ticket", "ticket=", nil, 401, wsgate.OutcomeTicketMissing},
		{"malformed ticket", "ticket=1b4e28ba-2fa1-11d2-883f-0016d3cca427", nil, 401, wsgate.OutcomeTicketMalformed},
		{"two tickets", "ticket=" + e.Ticket(t, "k1") + "&ticket=" + e.Ticket(t, "k1"), nil, 401, wsgate.OutcomeTicketMalformed},
		{"replayed ticket", "ticket=" + used, nil, 401, wsgate.OutcomeTicketInvalid},
		{"expired ticket", "ticket=" + expired, nil, 401, wsgate.OutcomeTicketInvalid},
		{"api_key in query", "api_key=rk_live_whatever", nil, 401, wsgate.OutcomeKeyInQuery},
		{"key in query beside a valid ticket", "ticket=" + e.Ticket(t, "k1") + "&key=abc", nil, 401, wsgate.OutcomeKeyInQuery},
		{"token", "token=abc", nil, 401, wsgate.OutcomeKeyInQuery},
		{"access_token escaped name", "access%5Ftoken=abc", nil, 401, wsgate.OutcomeKeyInQuery},
		{"apikey", "APIKEY=abc", nil, 401, wsgate.OutcomeKeyInQuery},
		{"rampart key under any name", "q=" + url.QueryEscape("rk_test_abc"), nil, 401, wsgate.OutcomeKeyInQuery},
		{"origin not allowed", "ticket=" + e.Ticket(t, "k1"), http.Header{"Origin": {"https://evil.example"}}, 403, wsgate.OutcomeOriginForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, resp, err := e.Dial(ctxT(t), "/ws?"+tt.query, &websocket.DialOptions{HTTPHeader: tt.header})
			if err == nil {
				_ = c.CloseNow()
				t.Fatal("upgrade accepted")
			}
			if resp == nil || resp.StatusCode != tt.status {
				t.Fatalf("response %v (%v), want status %d", resp, err, tt.status)
			}
		})
	}
	e.ev.mu.Lock()
	var outcomes []string
	for _, ev := range e.ev.refused {
		outcomes = append(outcomes, ev.Reason)
	}
	e.ev.mu.Unlock()
	for i, tt := range tests {
		if i >= len(outcomes) || outcomes[i] != tt.outcome {
			t.Errorf("refusal %d (%s): outcome %v, want %s", i, tt.name, outcomes, tt.outcome)
			break
		}
	}

	t.Run("plain GET", func(t *testing.T) {
		resp, err := http.Get(e.URL + "/ws?ticket=" + e.Ticket(t, "k1"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Errorf("status %d, want 426", resp.StatusCode)
		}
	})
	for _, origin := range []string{"https://app.example", "http://" + strings.TrimPrefix(e.URL, "http://")} {
		t.Run("allowed origin "+origin, func(t *testing.T) {
			c, _, err := e.Dial(ctxT(t), "/ws?ticket="+e.Ticket(t, "k1"), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
			if err != nil {
				t.Fatal(err)
			}
			_ = c.Close(websocket.StatusNormalClosure, "")
		})
	}
}

func TestDefaultOriginIsSameHost(t *testing.T) {
	e := newEnv(t, nil)
	host := strings.TrimPrefix(e.URL, "http://")
	for origin, ok := range map[string]bool{"http://" + host: true, "https://elsewhere.example": false, "null": false} {
		c, resp, err := e.Dial(ctxT(t), "/ws?ticket="+e.Ticket(t, "k1"), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		if ok != (err == nil) {
			t.Errorf("origin %q: err %v, want ok=%v", origin, err, ok)
		}
		if err == nil {
			_ = c.CloseNow()
		} else if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: %v", origin, resp)
		}
	}
}

func TestRoutePermission(t *testing.T) {
	e := newEnv(t, func(_ *wsgate.Options, ro *wsgate.RouteOptions) { ro.Permission = reqinfo.PermWrite })
	_, resp, err := e.Dial(ctxT(t), "/ws?ticket="+e.Ticket(t, "reader"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("read-only key on a write route: %v %v", resp, err)
	}
}

func TestRelay(t *testing.T) {
	e := newEnv(t, nil)
	c, resp, err := e.Dial(ctxT(t), "/ws/stream/a%2Fb?ticket="+e.Ticket(t, "k_relay")+"&topic=a%20b&x=1", &websocket.DialOptions{
		Subprotocols: []string{"v1.rampart", "other"},
		HTTPHeader:   http.Header{"X-Api-Key": {"must-not-pass"}, "Cookie": {"s=1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "v1.rampart" || c.Subprotocol() != "v1.rampart" {
		t.Errorf("subprotocol %q/%q, want v1.rampart chosen by the upstream", got, c.Subprotocol())
	}
	hs := <-e.up.Opened
	if hs.Path != "/ws/stream/a%2Fb" || hs.Query != "topic=a%20b&x=1" {
		t.Errorf("upstream saw %s?%s, want the path and the query without the ticket", hs.Path, hs.Query)
	}
	if hs.KeyID != "k_relay" || hs.Subprotocol != "v1.rampart" {
		t.Errorf("upstream saw key %q subprotocol %q", hs.KeyID, hs.Subprotocol)
	}
	for _, h := range []string{"X-Api-Key", "Cookie", "Origin"} {
		if v := hs.Header.Get(h); v != "" {
			t.Errorf("upstream got %s: %q", h, v)
		}
	}
	echo(t, c, websocket.MessageText, []byte(`{"hello":"world"}`))
	echo(t, c, websocket.MessageBinary, []byte{0, 1, 2, 0xff})
	echo(t, c, websocket.MessageBinary, bytes.Repeat([]byte{9}, wsgate.DefaultMaxMessageBytes))
	if err := c.Write(ctxT(t), websocket.MessageText, []byte("send 200000 binary")); err != nil {
		t.Fatal(err)
	}
	if typ, msg, err := c.Read(ctxT(t)); err != nil || typ != websocket.MessageBinary || len(msg) != 200000 {
		t.Fatalf("upstream-initiated message: %v %d %v", typ, len(msg), err)
	}
	e.ev.mu.Lock()
	opened := e.ev.opened
	e.ev.mu.Unlock()
	if len(opened) != 1 || opened[0].Principal.ID != "k_relay" || opened[0].Route != "ws" || opened[0].Subprotocol != "v1.rampart" {
		t.Errorf("OnOpen events %+v", opened)
	}

	// The upstream's close code and reason come back to the client.
	e.clock.Advance(90 * time.Second)
	if err := c.Write(ctxT(t), websocket.MessageText, []byte("close 4001 upstream says bye")); err != nil {
		t.Fatal(err)
	}
	if code, reason := closeCode(t, c); code != 4001 || reason != "upstream says bye" {
		t.Errorf("client got close %d %q, want 4001 %q", code, reason, "upstream says bye")
	}
	ev := e.ev.nextClose(t)
	if ev.Reason != wsgate.ReasonUpstreamClosed || ev.Code != 4001 || ev.Duration != 90*time.Second || ev.Principal.ID != "k_relay" {
		t.Errorf("OnClose %+v", ev)
	}
	if e.Gate.Len() != 0 {
		t.Errorf("%d connections left", e.Gate.Len())
	}
}

func TestClientCloseCodePassesUpstream(t *testing.T) {
	e := newEnv(t, nil)
	c := e.Connect(t, "k1", nil)
	<-e.up.Opened
	echo(t, c, websocket.MessageText, []byte("hi"))
	if err := c.Close(4002, "client done"); err != nil {
		t.Fatal(err)
	}
	if code := <-e.up.Ended; code != 4002 {
		t.Errorf("upstream got %d, want 4002", code)
	}
	if ev := e.ev.nextClose(t); ev.Reason != wsgate.ReasonClientClosed || ev.Code != 4002 {
		t.Errorf("OnClose %+v", ev)
	}
}

func TestUnexpectedEnds(t *testing.T) {
	t.Run("upstream drops", func(t *testing.T) {
		e := newEnv(t, nil)
		c := e.Connect(t, "k1", nil)
		if err := c.Write(ctxT(t), websocket.MessageText, []byte("drop")); err != nil {
			t.Fatal(err)
		}
		if code, reason := closeCode(t, c); code != websocket.StatusBadGateway || reason != "upstream gone" {
			t.Errorf("client got %d %q, want 1014", code, reason)
		}
		if ev := e.ev.nextClose(t); ev.Reason != wsgate.ReasonUpstreamGone || ev.Code != 1014 {
			t.Errorf("OnClose %+v", ev)
		}
	})
	t.Run("client drops", func(t *testing.T) {
		e := newEnv(t, nil)
		c := e.Connect(t, "k1", nil)
		<-e.up.Opened
		echo(t, c, websocket.MessageText, []byte("x"))
		_ = c.CloseNow()
		if code := <-e.up.Ended; code != websocket.StatusGoingAway {
			t.Errorf("upstream got %d, want 1001", code)
		}
		if ev := e.ev.nextClose(t); ev.Reason != wsgate.ReasonClientGone || ev.Code != 0 {
			t.Errorf("OnClose %+v", ev)
		}
	})
}

func TestPerPrincipalCap(t *testing.T) {
	e := newEnv(t, nil)
	for range wsgate.DefaultMaxPerPrincipal {
		c := e.Connect(t, "k_cap", nil)
		echo(t, c, websocket.MessageText, []byte("x"))
	}
	c := e.Connect(t, "k_cap", nil) // the upgrade succeeds so a browser can read the reason
	if code, reason := closeCode(t, c); code != websocket.StatusPolicyViolation || reason != "connection limit exceeded" {
		t.Errorf("11th connection: close %d %q, want 1008", code, reason)
	}
	other := e.Connect(t, "k_other", nil)
	echo(t, other, websocket.MessageText, []byte("still fine"))
	if n := len(e.up.Opened); n != 11 {
		t.Errorf("upstream saw %d connections, want 11 (the refused one is never dialed)", n)
	}
}

func TestGlobalCap(t *testing.T) {
	e := newEnv(t, func(o *wsgate.Options, _ *wsgate.RouteOptions) { o.MaxTotal = 3 })
	for _, k := range []string{"a", "b", "c"} {
		echo(t, e.Connect(t, k, nil), websocket.MessageText, []byte(k))
	}
	c := e.Connect(t, "d", nil)
	if code, _ := closeCode(t, c); code != websocket.StatusPolicyViolation {
		t.Errorf("connection over the global cap: close %d, want 1008", code)
	}
}

func TestMessageTooBig(t *testing.T) {
	e := newEnv(t, nil)
	c := e.Connect(t, "k1", nil)
	<-e.up.Opened
	echo(t, c, websocket.MessageBinary, make([]byte, 64<<10))
	if err := c.Write(ctxT(t), websocket.MessageBinary, make([]byte, 65<<10)); err != nil {
		t.Fatal(err)
	}
	if code, _ := closeCode(t, c); code != websocket.StatusMessageTooBig {
		t.Errorf("client got %d, want 1009", code)
	}
	if code := <-e.up.Ended; code != websocket.StatusGoingAway {
		t.Errorf("upstream got %d, want 1001", code)
	}
	if ev := e.ev.nextClose(t); ev.Reason != wsgate.ReasonTooBig || ev.Code != 1009 {
		t.Errorf("OnClose %+v", ev)
	}
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, func(o *wsgate.Options, _ *wsgate.RouteOptions) {
		o.IdleTimeout = 2 * time.Minute
		o.PingInterval = -1
	})
	c := e.Connect(t, "k1", nil)
	<-e.up.Opened
	e.clock.Advance(90 * time.Second)
	echo(t, c, websocket.MessageText, []byte("activity"))
	e.clock.Advance(90 * time.Second)
	e.ticker.Tick(t) // 90 s since the last message: kept
	e.ticker.Tick(t) // returns once the first sweep is done
	echo(t, c, websocket.MessageText, []byte("still open"))
	e.clock.Advance(2 * time.Minute)
	e.ticker.Tick(t)
	if code, reason := closeCode(t, c); code != websocket.StatusGoingAway || reason != "idle timeout" {
		t.Errorf("client got %d %q, want 1001 idle timeout", code, reason)
	}
	if code := <-e.up.Ended; code != websocket.StatusGoingAway {
		t.Errorf("upstream got %d, want 1001", code)
	}
	if ev := e.ev.nextClose(t); ev.Reason != wsgate.ReasonIdle {
		t.Errorf("OnClose %+v", ev)
	}
}

// pinged returns dial options whose client answers pings only if answer is
// set, and a channel signalled on every ping.
func pinged(answer bool) (*websocket.DialOptions, chan struct{}) {
	ch := make(chan struct{}, 16)
	return &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		ch <- struct{}{}
		return answer
	}}, ch
}

// answerPing delivers a tick and reads (by echoing) until the client has
// handled the gate's ping; then, if upstream is set, waits for the upstream
// to handle its ping too. Each side writes its pong before it reads the
// next frame, so after one more round trip the gate has read both pongs.
func answerPing(t *testing.T, e *env, c *websocket.Conn, pings chan struct{}, upstream bool) {
	t.Helper()
	echo(t, c, websocket.MessageText, []byte("registered")) // the relay runs
	e.ticker.Tick(t)
	deadline := time.Now().Add(wsgatetest.Timeout)
	for seen := false; !seen; {
		echo(t, c, websocket.MessageText, []byte("probe"))
		select {
		case <-pings:
			seen = true
		default:
			if time.Now().After(deadline) {
				t.Fatal("no ping")
			}
		}
	}
	if upstream {
		waitPing(t, e.up.Pinged)
	}
	echo(t, c, websocket.MessageText, []byte("after the pongs"))
}

func waitPing(t *testing.T, ch chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wsgatetest.Timeout):
		t.Fatal("no ping")
	}
}

func TestPingTimeoutDropsSilentClient(t *testing.T) {
	e := newEnv(t, nil)
	opts, pings := pinged(false)
	c := e.Connect(t, "k1", opts)
	<-e.up.Opened
	echo(t, c, websocket.MessageText, []byte("registered")) // the relay runs
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		readErr <- err
	}()
	e.ticker.Tick(t)
	waitPing(t, pings)
	e.ticker.Tick(t)
	if code := <-e.up.Ended; code != websocket.StatusGoingAway {
		t.Errorf("upstream got %d, want 1001", code)
	}
	if err := <-readErr; websocket.CloseStatus(err) != -1 {
		t.Errorf("silent client got a close frame (%v); it is cut without one", err)
	}
	if ev := e.ev.nextClose(t); ev.Reason != wsgate.ReasonPingTimeout {
		t.Errorf("OnClose %+v", ev)
	}
}

func TestPingTimeoutDropsSilentUpstream(t *testing.T) {
	e := newEnv(t, func(_ *wsgate.Options, ro *wsgate.RouteOptions) {})
	opts, pings := pinged(true)
	ctx := ctxT(t)
	c, _, err := e.Dial(ctx, "/mute?ticket="+e.Ticket(t, "k1"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	<-e.up.Opened
	answerPing(t, e, c, pings, false)
	e.ticker.Tick(t)
	if code, reason := closeCode(t, c); code != websocket.StatusBadGateway || reason != "upstream not responding" {
		t.Errorf("client got %d %q, want 1014", code, reason)
	}
	if ev := e.ev.nextClose(t); ev.Reason != wsgate.ReasonPingTimeout || ev.Code != 1014 {
		t.Errorf("OnClose %+v", ev)
	}
}

func TestHealthyPeersSurvivePings(t *testing.T) {
	e := newEnv(t, nil)
	opts, pings := pinged(true)
	c := e.Connect(t, "k1", opts)
	<-e.up.Opened
	for range 3 {
		answerPing(t, e, c, pings, true)
	}
	if e.Gate.Len() != 1 {
		t.Fatal("connection dropped")
	}
	// The third round's pongs are in; a fourth tick checks them.
	answerPing(t, e, c, pings, true)
	if e.Gate.Len() != 1 {
		t.Fatal("connection dropped")
	}
}

func TestCloseKey(t *testing.T) {
	e := newEnv(t, nil)
	a1, a2 := e.Connect(t, "k_revoked", nil), e.Connect(t, "k_revoked", nil)
	b := e.Connect(t, "k_kept", nil)
	for _, c := range []*websocket.Conn{a1, a2, b} {
		echo(t, c, websocket.MessageText, []byte("x"))
	}
	e.Gate.CloseKey("k_revoked")
	for _, c := range []*websocket.Conn{a1, a2} {
		if code, reason := closeCode(t, c); code != websocket.StatusPolicyViolation || reason != "credential revoked" {
			t.Errorf("revoked key's socket got %d %q, want 1008", code, reason)
		}
	}
	echo(t, b, websocket.MessageText, []byte("unaffected"))
	for range 2 {
		if ev := e.ev.nextClose(t); ev.Reason != wsgate.ReasonRevoked || ev.Principal.ID != "k_revoked" {
			t.Errorf("OnClose %+v", ev)
		}
	}
}

// A ticket issued before its key was revoked opens nothing afterwards,
// until every such ticket has expired; other keys are unaffected.
func TestTicketIssuedBeforeRevocation(t *testing.T) {
	e := newEnv(t, nil)
	pending := e.Ticket(t, "k_revoked")
	other := e.Ticket(t, "k_kept")
	e.Gate.CloseKey("k_revoked")
	if _, resp, err := e.Dial(ctxT(t), "/ws?ticket="+pending, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("ticket issued before the revocation: %v, want 401", err)
	}
	c, _, err := e.Dial(ctxT(t), "/ws?ticket="+other, nil)
	if err != nil {
		t.Fatalf("another key's ticket: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	echo(t, c, websocket.MessageText, []byte("unaffected"))

	// Once the tickets of that time have expired, the entry is dropped
	// (a revoked key gets no new ticket from authentication anyway).
	e.clock.Advance(wsgate.DefaultTicketTTL + 2*time.Minute)
	e.Gate.CloseKey("k_other") // prunes expired entries
	c2 := e.Connect(t, "k_revoked", nil)
	echo(t, c2, websocket.MessageText, []byte("entry expired"))
}

func TestCloseSession(t *testing.T) {
	e := newEnv(t, nil)
	dial := func(user, session string) *websocket.Conn {
		tk := e.TicketWith(t, http.Header{wsgatetest.UserHeader: {user}, wsgatetest.SessionHeader: {session}})
		c, _, err := e.Dial(ctxT(t), "/ws?ticket="+tk, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.CloseNow() })
		echo(t, c, websocket.MessageText, []byte("x"))
		return c
	}
	ended, other := dial("u1", "sess-ended"), dial("u1", "sess-other")
	hs := <-e.up.Opened
	if hs.Header.Get(wsgate.HeaderUser) != "u1" || hs.KeyID != "" {
		t.Errorf("upstream saw user %q key %q", hs.Header.Get(wsgate.HeaderUser), hs.KeyID)
	}
	e.Gate.CloseSession("sess-ended")
	if code, _ := closeCode(t, ended); code != websocket.StatusPolicyViolation {
		t.Errorf("ended session's socket got %d, want 1008", code)
	}
	echo(t, other, websocket.MessageText, []byte("other session unaffected"))
}

func TestMessageRate(t *testing.T) {
	lim, err := ratelimit.ParseLimit("2/s")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *wsgate.Options, _ *wsgate.RouteOptions) { o.MessageRate = lim })
	c := e.Connect(t, "k1", nil)
	echo(t, c, websocket.MessageText, []byte("1"))
	echo(t, c, websocket.MessageText, []byte("2"))
	e.clock.Advance(500 * time.Millisecond)
	echo(t, c, websocket.MessageText, []byte("3 after half a second"))
	if err := c.Write(ctxT(t), websocket.MessageText, []byte("4 too soon")); err != nil {
		t.Fatal(err)
	}
	if code, reason := closeCode(t, c); code != websocket.StatusPolicyViolation || reason != "message rate exceeded" {
		t.Errorf("client got %d %q, want 1008", code, reason)
	}
}

func TestShutdown(t *testing.T) {
	e := newEnv(t, nil)
	c := e.Connect(t, "k1", nil)
	echo(t, c, websocket.MessageText, []byte("x"))
	tk := e.Ticket(t, "k1")
	got := make(chan websocket.StatusCode, 1)
	go func() { // reading answers the close handshake
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				got <- websocket.CloseStatus(err)
				return
			}
		}
	}()
	if err := e.Gate.Shutdown(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if code := <-got; code != websocket.StatusGoingAway {
		t.Errorf("client got %d, want 1001", code)
	}
	if ev := e.ev.nextClose(t); ev.Reason != wsgate.ReasonShutdown {
		t.Errorf("OnClose %+v", ev)
	}
	if _, resp, err := e.Dial(ctxT(t), "/ws?ticket="+tk, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after shutdown: %v %v, want 503", resp, err)
	}
}

func TestUpstreamDown(t *testing.T) {
	e := newEnv(t, func(_ *wsgate.Options, ro *wsgate.RouteOptions) { ro.Upstream = "ws://127.0.0.1:1" })
	_, resp, err := e.Dial(ctxT(t), "/ws?ticket="+e.Ticket(t, "k1"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("%v %v, want 502", resp, err)
	}
	// The refused connection released its slot.
	for range wsgate.DefaultMaxPerPrincipal + 1 {
		if _, resp, _ := e.Dial(ctxT(t), "/ws?ticket="+e.Ticket(t, "k1"), nil); resp == nil || resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("%v, want 502 every time", resp)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	tk := newTickets(t, wsgate.TicketsOptions{})
	bad := []wsgate.Options{
		{},
		{Tickets: tk, IdleTimeout: time.Millisecond},
		{Tickets: tk, PingInterval: time.Millisecond},
		{Tickets: tk, MaxMessageBytes: -1},
		{Tickets: tk, MessageRate: ratelimit.Limit{Count: 5}},
	}
	for i, o := range bad {
		if g, err := wsgate.New(o); err == nil {
			_ = g.Shutdown(context.Background())
			t.Errorf("options %d accepted", i)
		}
	}
	g, err := wsgate.New(wsgate.Options{Tickets: tk})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())
	for _, up := range []string{"ftp://x", "ws://", "ws://u:p@host", "ws://host/?q=1", "::"} {
		if _, err := g.Handler(wsgate.RouteOptions{Name: "r", Upstream: up}); err == nil {
			t.Errorf("upstream %q accepted", up)
		}
	}
}

// expiredDeadlines hijacks like a server whose read and write timeouts
// have passed: the connection it returns has deadlines in the past.
type expiredDeadlines struct{ http.ResponseWriter }

func (w expiredDeadlines) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		_ = nc.SetDeadline(time.Unix(1, 0))
	}
	return nc, rw, err
}

// TestServerDeadlinesCleared: http.Server's ReadTimeout and WriteTimeout
// leave deadlines on a hijacked connection; the gate clears them so a
// socket outlives them.
func TestServerDeadlinesCleared(t *testing.T) {
	up := wsgatetest.NewUpstream(t)
	tk := newTickets(t, wsgate.TicketsOptions{Log: quiet})
	g, err := wsgate.New(wsgate.Options{Tickets: tk, NewTicker: wsgatetest.NewTicker().New, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	h, err := g.Handler(wsgate.RouteOptions{Name: "ws", Upstream: up.URL})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(wsgatetest.WithPrincipal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wsgatetest.TicketPath {
			tk.Handler().ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(expiredDeadlines{w}, r)
	})))
	defer srv.Close()
	defer g.Shutdown(context.Background())
	s := &wsgatetest.Server{URL: srv.URL, Gate: g, Tickets: tk}
	c := s.Connect(t, "k1", nil)
	echo(t, c, websocket.MessageText, []byte("past the server's deadlines"))
	_ = c.Close(websocket.StatusNormalClosure, "")
}

func TestUpstreamBasePath(t *testing.T) {
	var base string
	e := newEnv(t, func(_ *wsgate.Options, ro *wsgate.RouteOptions) {
		ro.Upstream = strings.Replace(ro.Upstream, "http://", "ws://", 1) + "/api/"
		base = ro.Upstream
	})
	c := e.Connect(t, "k1", nil)
	echo(t, c, websocket.MessageText, []byte("x"))
	if hs := <-e.up.Opened; hs.Path != "/api/ws" {
		t.Errorf("upstream %s saw path %q, want /api/ws", base, hs.Path)
	}
}
