package wsgatetest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rampart-security/rampart/internal/clientip"
	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/wsgate"
)

// Timeout bounds every wait in these tests; generous, never asserted.
const Timeout = 20 * time.Second

// Handshake is what the upstream saw when a connection was opened.
type Handshake struct {
	Path        string // escaped
	Query       string
	KeyID       string
	Subprotocol string
	Header      http.Header
}

// Upstream is a real WebSocket server on loopback. It echoes every message
// with its type, except text commands:
//
//	close <code> <reason>   close with that code
//	drop                    drop the connection without a close frame
//	send <n> text|binary    send a message of n bytes
//
// The path /mute answers no pings.
type Upstream struct {
	URL string // http://127.0.0.1:port
	// Opened receives each handshake; Ended the close code each connection
	// ended with (-1 when it ended without a close frame).
	Opened chan Handshake
	Ended  chan websocket.StatusCode
	// Pinged is signalled (without blocking) on every ping the upstream
	// answers, before the pong is written.
	Pinged chan struct{}
	srv    *httptest.Server
}

// NewUpstream starts an upstream, stopped at the end of the test.
func NewUpstream(t testing.TB) *Upstream {
	u := &Upstream{Opened: make(chan Handshake, 4096), Ended: make(chan websocket.StatusCode, 4096), Pinged: make(chan struct{}, 4096)}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	u.URL = u.srv.URL
	t.Cleanup(u.srv.Close)
	return u
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	opts := &websocket.AcceptOptions{Subprotocols: []string{"v2.rampart", "v1.rampart"}}
	mute := r.URL.Path == "/mute"
	opts.OnPingReceived = func(context.Context, []byte) bool {
		if mute {
			return false
		}
		select {
		case u.Pinged <- struct{}{}:
		default:
		}
		return true
	}
	c, err := websocket.Accept(w, r, opts)
	if err != nil {
		return
	}
	c.SetReadLimit(4 << 20)
	u.Opened <- Handshake{Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, KeyID: r.Header.Get(wsgate.HeaderKeyID), Subprotocol: c.Subprotocol(), Header: r.Header.Clone()}
	ctx := context.Background()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			u.Ended <- websocket.CloseStatus(err)
			_ = c.CloseNow()
			return
		}
		if typ == websocket.MessageText {
			f := strings.Fields(string(msg))
			switch {
			case len(f) >= 2 && f[0] == "close":
				code, _ := strconv.Atoi(f[1])
				_ = c.Close(websocket.StatusCode(code), strings.Join(f[2:], " "))
				u.Ended <- websocket.StatusCode(code)
				return
			case len(f) == 1 && f[0] == "drop":
				_ = c.CloseNow()
				u.Ended <- -1
				return
			case len(f) == 3 && f[0] == "send":
				n, _ := strconv.Atoi(f[1])
				mt := websocket.MessageText
				if f[2] == "binary" {
					mt = websocket.MessageBinary
				}
				if err := c.Write(ctx, mt, bytes.Repeat([]byte("x"), n)); err != nil {
					return
				}
				continue
			}
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

// Headers WithPrincipal reads: the test principal's key ID, or a user ID
// and session ID.
const (
	PrincipalHeader = "X-Test-Key-ID"
	UserHeader      = "X-Test-User-ID"
	SessionHeader   = "X-Test-Session-ID"
)

// WithPrincipal stands in for reqinfo.Middleware and authentication: it
// puts an Info in the context with the peer address as client IP, and,
// when the request has PrincipalHeader, an API-key principal with read
// permission and that ID, or with UserHeader a user principal with the
// session in SessionHeader.
func WithPrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &reqinfo.Info{ID: "test-request", Start: time.Now()}
		info.ClientIP, _ = clientip.Peer(r.RemoteAddr)
		if id := r.Header.Get(PrincipalHeader); id != "" {
			info.Principal = reqinfo.Principal{Kind: "api_key", ID: id, Name: "test " + id, Permissions: reqinfo.PermRead}
		}
		if id := r.Header.Get(UserHeader); id != "" {
			info.Principal = reqinfo.Principal{Kind: "user", ID: id, Name: "user " + id, Permissions: reqinfo.PermRead, SessionID: r.Header.Get(SessionHeader)}
		}
		next.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), info)))
	})
}

// TicketPath is where Server serves the ticket endpoint.
const TicketPath = "/ws/ticket"

// Server serves a gate's route at /ws* and its ticket endpoint on loopback.
type Server struct {
	URL     string // http://127.0.0.1:port
	Gate    *wsgate.Gate
	Tickets *wsgate.Tickets
}

// NewServer serves g (route ro at every path except TicketPath) and t.
// The gate is shut down at the end of the test.
func NewServer(t testing.TB, g *wsgate.Gate, tk *wsgate.Tickets, ro wsgate.RouteOptions) *Server {
	t.Helper()
	h, err := g.Handler(ro)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(TicketPath, tk.Handler())
	mux.Handle("/", h)
	srv := httptest.NewServer(WithPrincipal(mux))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		_ = g.Shutdown(ctx)
		srv.Close()
	})
	return &Server{URL: srv.URL, Gate: g, Tickets: tk}
}

// Ticket asks the server for a ticket as keyID.
func (s *Server) Ticket(t testing.TB, keyID string) string {
	t.Helper()
	return s.TicketWith(t, http.Header{PrincipalHeader: {keyID}})
}

// TicketWith asks the server for a ticket with the given request headers.
func (s *Server) TicketWith(t testing.TB, h http.Header) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+TicketPath, nil)
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body wsgate.TicketResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("ticket: status %d, decode %v", resp.StatusCode, err)
	}
	return body.Ticket
}

// Dial opens pathAndQuery (e.g. "/ws?ticket=...") on the server.
func (s *Server) Dial(ctx context.Context, pathAndQuery string, opts *websocket.DialOptions) (*websocket.Conn, *http.Response, error) {
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+pathAndQuery, opts)
}

// Connect gets a ticket as keyID and opens /ws with it, failing the test
// if the upgrade fails.
func (s *Server) Connect(t testing.TB, keyID string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	c, _, err := s.Dial(ctx, "/ws?ticket="+s.Ticket(t, keyID), opts)
	if err != nil {
		t.Fatalf("connect as %s: %v", keyID, err)
	}
	c.SetReadLimit(4 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// Clock is a manual clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at a fixed instant.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Ticker is a manual wsgate.Ticker. Tick returns once the receiver has
// taken the tick; a second Tick returns once the work of the first is done.
type Ticker struct{ ch chan time.Time }

// NewTicker returns a manual ticker; use its New as Options.NewTicker.
func NewTicker() *Ticker { return &Ticker{ch: make(chan time.Time)} }

// New implements Options.NewTicker.
func (tk *Ticker) New(time.Duration) wsgate.Ticker { return tk }

// C implements wsgate.Ticker.
func (tk *Ticker) C() <-chan time.Time { return tk.ch }

// Stop implements wsgate.Ticker.
func (tk *Ticker) Stop() {}

// Tick delivers one tick, failing the test if nobody takes it.
func (tk *Ticker) Tick(t testing.TB) {
	t.Helper()
	select {
	case tk.ch <- time.Time{}:
	case <-time.After(Timeout):
		t.Fatal("tick not taken")
	}
}
