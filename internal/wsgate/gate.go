package wsgate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/rampart-security/rampart/internal/ratelimit"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

// Defaults for Options.
const (
	DefaultMaxPerPrincipal         = 10
	DefaultMaxTotal                = 1000
	DefaultIdleTimeout             = 5 * time.Minute
	DefaultPingInterval            = 30 * time.Second
	DefaultMaxMessageBytes         = 64 << 10
	DefaultMaxUpstreamMessageBytes = 1 << 20
	DefaultDialTimeout             = 10 * time.Second
)

// Outcomes recorded in reqinfo.Info.Outcome when the gate refuses a
// connection or a ticket request. Clients see only a generic message.
const (
	OutcomeTicketUnauthenticated = "ws_ticket_unauthenticated"
	OutcomeTicketUnavailable     = "ws_ticket_unavailable"
	OutcomeKeyInQuery            = "ws_key_in_query"
	OutcomeNotUpgrade            = "ws_not_upgrade"
	OutcomeOriginForbidden       = "ws_origin_forbidden"
	OutcomeTicketMissing         = "ws_ticket_missing"
	OutcomeTicketMalformed       = "ws_ticket_malformed"
	OutcomeTicketInvalid         = "ws_ticket_invalid"
	OutcomeForbidden             = "ws_forbidden"
	OutcomeLimitPrincipal        = "ws_limit_principal"
	OutcomeLimitGlobal           = "ws_limit_global"
	OutcomeRegistryUnavailable   = "ws_registry_unavailable"
	OutcomeUpstreamUnavailable   = "ws_upstream_unavailable"
	OutcomeShuttingDown          = "ws_shutting_down"
)

// Close reasons reported in Event.Reason by OnClose.
const (
	ReasonClientClosed   = "client_closed"   // the client sent a close frame; its code went upstream
	ReasonUpstreamClosed = "upstream_closed" // the upstream sent a close frame; its code went to the client
	ReasonClientGone     = "client_gone"     // the client connection ended without a close frame
	ReasonUpstreamGone   = "upstream_gone"   // the upstream connection ended without a close frame (client gets 1014)
	ReasonIdle           = "idle"            // no data either way for IdleTimeout (1001)
	ReasonPingTimeout    = "ping_timeout"    // a side did not answer a ping within PingInterval
	ReasonRevoked        = "revoked"         // CloseKey or CloseSession (1008)
	ReasonTooBig         = "message_too_big" // client message over MaxMessageBytes (1009)
	ReasonRateLimited    = "message_rate"    // client over MessageRate (1008)
	ReasonShutdown       = "shutdown"        // Gate.Shutdown (1001)
)

// Ticker delivers ticks; Stop releases it. [Options.NewTicker] returns one.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

type timeTicker struct{ t *time.Ticker }

func (t timeTicker) C() <-chan time.Time { return t.t.C }
func (t timeTicker) Stop()               { t.t.Stop() }

// NewTimeTicker is the default [Options.NewTicker]: a time.Ticker.
func NewTimeTicker(d time.Duration) Ticker { return timeTicker{time.NewTicker(d)} }

// Revocation names what to close: every socket of a key, or of a session.
type Revocation struct {
	KeyID     string
	SessionID string
}

// Revocations fans revocations out to every instance.
type Revocations interface {
	// Publish sends r to every subscriber, this instance included.
	Publish(ctx context.Context, r Revocation) error
	// Subscribe calls deliver for every published revocation until stop is
	// called. It returns once the subscription is active.
	Subscribe(ctx context.Context, deliver func(Revocation)) (stop func(), err error)
}

// Event describes one relayed connection to OnOpen and OnClose, or one
// refusal to OnRefuse.
type Event struct {
	ConnID      string
	Route       string
	Principal   reqinfo.Principal
	ClientIP    netip.Addr
	RequestID   string
	Subprotocol string
	Opened      time.Time
	// Duration, Code and Reason are set for OnClose and OnRefuse. Code is
	// the close code sent to or received from the client (0 when the
	// client vanished), or for a refusal before the upgrade the HTTP
	// status. Reason is one of the Reason constants, or for OnRefuse one of
	// the Outcome constants.
	Duration time.Duration
	Code     int
	Reason   string
}

// Options configures [New]. Zero values take the defaults.
type Options struct {
	// Tickets redeems the tickets presented on upgrade. Required.
	Tickets *Tickets
	// Registry counts connections for the caps; default in-memory (this
	// instance only). Use wsredis.Registry for caps across instances.
	Registry Registry
	// Revocations, when set, fans CloseKey and CloseSession out to every
	// instance; without it they act on this instance only.
	Revocations Revocations
	// CheckOrigin reports whether a cross-origin browser Origin may
	// connect; the integrator passes the CORS allowlist. An Origin whose
	// host equals the request's Host (same origin) is always allowed, and
	// requests without an Origin header (non-browser clients) are not
	// checked. When nil, only same-origin browsers may connect.
	CheckOrigin func(origin string) bool
	// MaxPerPrincipal caps open connections per principal (default 10);
	// MaxTotal caps them in total (default 1000). Negative: no cap.
	MaxPerPrincipal int
	MaxTotal        int
	// IdleTimeout closes a connection (1001) after no data message either
	// way for this long; default 5 min; negative disables.
	IdleTimeout time.Duration
	// PingInterval is how often both sides are pinged; a side that has not
	// answered the previous ping by the next one is dropped. It is also
	// the period at which idleness is checked. Default 30 s; negative
	// disables pings (idleness is then checked every IdleTimeout/10).
	PingInterval time.Duration
	// MaxMessageBytes bounds a client message (default 64 KiB); a larger
	// one closes the connection with 1009.
	MaxMessageBytes int64
	// MaxUpstreamMessageBytes bounds an upstream message (default 1 MiB).
	MaxUpstreamMessageBytes int64
	// MessageRate, when set (e.g. ratelimit.ParseLimit("20/s")), limits
	// client messages per connection; over it the connection is closed
	// with 1008.
	MessageRate ratelimit.Limit
	// DialTimeout bounds the upstream handshake; default 10 s.
	DialTimeout time.Duration
	// HTTPClient dials upstreams (set its Transport's TLSClientConfig for
	// wss upstreams); default a client with its own transport.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
	// NewTicker makes the maintenance ticker; default NewTimeTicker.
	NewTicker func(time.Duration) Ticker
	// Rand makes connection IDs; default crypto/rand.
	Rand io.Reader
	// Log receives operational messages; default slog.Default().
	Log *slog.Logger
	// OnOpen, OnClose and OnRefuse are called for audit and metrics.
	// OnClose runs once per opened connection after both sides are
	// closed; OnRefuse for every refused upgrade. They must not block.
	OnOpen   func(Event)
	OnClose  func(Event)
	OnRefuse func(Event)
}

// Gate relays WebSocket routes under the options' limits. It is safe for
// concurrent use.
type Gate struct {
	o        Options
	log      *slog.Logger
	client   *http.Client
	stopSub  func()
	ticker   Ticker
	tickStop chan struct{}
	tickDone chan struct{}

	mu       sync.Mutex
	conns    map[*conn]struct{}
	byKey    map[string]map[*conn]struct{}
	closing  bool
	relaysWG sync.WaitGroup
	// revoked holds recent revocations until every ticket issued before
	// them has expired, so a ticket obtained before a key was revoked
	// cannot open a socket after it.
	revoked map[Revocation]time.Time
}

// New validates o and starts the gate's maintenance loop (idle reaping and
// pings) and, when Revocations is set, its subscription. Call Shutdown to
// stop them.
func New(o Options) (*Gate, error) {
	if o.Tickets == nil {
		return nil, errors.New("wsgate: Tickets is required")
	}
	if o.Registry == nil {
		o.Registry = NewMemoryRegistry()
	}
	if o.MaxPerPrincipal == 0 {
		o.MaxPerPrincipal = DefaultMaxPerPrincipal
	}
	if o.MaxTotal == 0 {
		o.MaxTotal = DefaultMaxTotal
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.MaxUpstreamMessageBytes == 0 {
		o.MaxUpstreamMessageBytes = DefaultMaxUpstreamMessageBytes
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	switch {
	case o.MaxMessageBytes < 0 || o.MaxUpstreamMessageBytes < 0:
		return nil, errors.New("wsgate: message size limits must be positive")
	case o.DialTimeout < 0:
		return nil, errors.New("wsgate: negative dial timeout")
	case o.IdleTimeout > 0 && o.IdleTimeout < time.Second:
		return nil, fmt.Errorf("wsgate: idle timeout %s is under 1s", o.IdleTimeout)
	case o.PingInterval > 0 && o.PingInterval < 100*time.Millisecond:
		return nil, fmt.Errorf("wsgate: ping interval %s is under 100ms", o.PingInterval)
	}
	if o.MessageRate != (ratelimit.Limit{}) {
		if err := o.MessageRate.Validate(); err != nil {
			return nil, fmt.Errorf("wsgate: message rate: %w", err)
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewTicker == nil {
		o.NewTicker = NewTimeTicker
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	g := &Gate{
		o:        o,
		log:      o.Log,
		client:   o.HTTPClient,
		conns:    make(map[*conn]struct{}),
		byKey:    make(map[string]map[*conn]struct{}),
		revoked:  make(map[Revocation]time.Time),
		tickStop: make(chan struct{}),
		tickDone: make(chan struct{}),
	}
	if g.client == nil {
		g.client = &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: o.DialTimeout,
			// The buffers live as long as the connection; the relay
			// reads whole messages through coder/websocket's own.
			ReadBufferSize:  1 << 10,
			WriteBufferSize: 1 << 10,
		}}
	}
	if o.Revocations != nil {
		stop, err := o.Revocations.Subscribe(context.Background(), g.closeLocal)
		if err != nil {
			return nil, fmt.Errorf("wsgate: subscribe to revocations: %w", err)
		}
		g.stopSub = stop
	}
	tick := o.PingInterval
	if tick < 0 {
		tick = o.IdleTimeout / 10
		if tick < time.Second {
			tick = time.Second
		}
	}
	if o.PingInterval > 0 || o.IdleTimeout > 0 {
		g.ticker = o.NewTicker(tick)
		go g.maintain()
	} else {
		close(g.tickDone)
	}
	return g, nil
}

// RouteOptions configures one WebSocket route's handler.
type RouteOptions struct {
	// Name is the route's name, reported in events.
	Name string
	// Upstream is the base URL (ws, wss, http or https) the request's path
	// and query (minus the ticket) are appended to.
	Upstream string
	// Permission is required of the ticket's principal; zero: any.
	Permission reqinfo.Permission
}

// Handler returns the handler for one WebSocket route. The integrator
// routes requests for the route to it instead of the reverse proxy, behind
// reqinfo.Middleware (for the client IP and request ID) but not behind
// API-key authentication: the ticket is the credential. On success the
// handler sets the Info's Principal and returns once the upgrade is done;
// the relay runs on its own goroutines until OnClose.
func (g *Gate) Handler(ro RouteOptions) (http.Handler, error) {
	u, err := url.Parse(ro.Upstream)
	if err != nil {
		return nil, fmt.Errorf("wsgate route %q: upstream: %w", ro.Name, err)
	}
	switch u.Scheme {
	case "ws", "http":
		u.Scheme = "http"
	case "wss", "https":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("wsgate route %q: upstream scheme %q is not ws, wss, http or https", ro.Name, u.Scheme)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("wsgate route %q: upstream must be scheme://host[:port][/path] without credentials, query or fragment", ro.Name)
	}
	return &routeHandler{g: g, name: ro.Name, base: u, perm: ro.Permission}, nil
}

// CloseKey closes every socket of the API key keyID with 1008, on every
// instance when Revocations is set. Call it when a key is revoked, rotated
// out or deleted.
func (g *Gate) CloseKey(keyID string) {
	g.revoke(Revocation{KeyID: keyID})
}

// CloseSession closes every socket opened under the session with 1008, on
// every instance when Revocations is set. Call it when a session ends.
func (g *Gate) CloseSession(sessionID string) {
	g.revoke(Revocation{SessionID: sessionID})
}

func (g *Gate) revoke(r Revocation) {
	if r.KeyID == "" && r.SessionID == "" {
		return
	}
	g.closeLocal(r)
	if g.o.Revocations == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.o.Revocations.Publish(ctx, r); err != nil {
		g.log.Error("websocket revocation not published to other instances", "error", err, "key_id", r.KeyID)
	}
}

// closeLocal closes this instance's sockets matching r and refuses, until
// the tickets issued before r have expired, sockets that r's credential
// would open.
func (g *Gate) closeLocal(r Revocation) {
	var victims []*conn
	now := g.o.Now()
	g.mu.Lock()
	for old, until := range g.revoked {
		if !now.Before(until) {
			delete(g.revoked, old)
		}
	}
	// A grant may be redeemed up to the ticket TTL after it was issued,
	// and another instance may issue one a little after the revocation
	// while its authentication cache still holds the key.
	g.revoked[r] = now.Add(g.o.Tickets.ttl + time.Minute)
	if r.KeyID != "" {
		for c := range g.byKey[principalKey(reqinfo.Principal{Kind: "api_key", ID: r.KeyID})] {
			victims = append(victims, c)
		}
	}
	if r.SessionID != "" {
		for c := range g.conns {
			if c.principal.SessionID == r.SessionID {
				victims = append(victims, c)
			}
		}
	}
	g.mu.Unlock()
	for _, c := range victims {
		c.terminate(ReasonRevoked, websocket.StatusPolicyViolation, "credential revoked", websocket.StatusGoingAway)
	}
}

// Len returns the number of connections relayed by this instance.
func (g *Gate) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Shutdown refuses new connections, closes every open one with 1001, and
// waits until the relays end or ctx is done. It stops the maintenance loop
// and the revocation subscription.
func (g *Gate) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	first := !g.closing
	g.closing = true
	victims := make([]*conn, 0, len(g.conns))
	for c := range g.conns {
		victims = append(victims, c)
	}
	g.mu.Unlock()
	if first {
		close(g.tickStop)
		if g.stopSub != nil {
			g.stopSub()
		}
	}
	for _, c := range victims {
		c.terminate(ReasonShutdown, websocket.StatusGoingAway, "server shutting down", websocket.StatusGoingAway)
	}
	done := make(chan struct{})
	go func() {
		g.relaysWG.Wait()
		<-g.tickDone
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range victims {
			c.abort()
		}
		return fmt.Errorf("wsgate shutdown: %w", ctx.Err())
	}
}

// maintain runs on every tick: it closes idle connections and pings.
func (g *Gate) maintain() {
	defer close(g.tickDone)
	defer g.ticker.Stop()
	for {
		select {
		case <-g.tickStop:
			return
		case <-g.ticker.C():
			g.sweep()
		}
	}
}

func (g *Gate) sweep() {
	now := g.o.Now().UnixNano()
	g.mu.Lock()
	cs := make([]*conn, 0, len(g.conns))
	for c := range g.conns {
		cs = append(cs, c)
	}
	g.mu.Unlock()
	for _, c := range cs {
		if g.o.IdleTimeout > 0 && now-c.last.Load() >= int64(g.o.IdleTimeout) {
			c.terminate(ReasonIdle, websocket.StatusGoingAway, "idle timeout", websocket.StatusGoingAway)
			continue
		}
		if g.o.PingInterval > 0 {
			c.pingRound()
		}
	}
}

// revokedLocked reports whether p's key or session was revoked recently.
// Call it with g.mu held.
func (g *Gate) revokedLocked(p reqinfo.Principal) bool {
	now := g.o.Now()
	check := func(r Revocation) bool {
		until, ok := g.revoked[r]
		return ok && now.Before(until)
	}
	return (p.Kind == "api_key" && check(Revocation{KeyID: p.ID})) ||
		(p.SessionID != "" && check(Revocation{SessionID: p.SessionID}))
}

func (g *Gate) isRevoked(p reqinfo.Principal) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.revokedLocked(p)
}

// add registers c. It refuses when the gate is closing, or when c's
// credential was revoked after its ticket was redeemed (revoked is true).
func (g *Gate) add(c *conn) (ok, revoked bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false, false
	}
	if g.revokedLocked(c.principal) {
		return false, true
	}
	g.relaysWG.Add(1) // under mu, so never after Shutdown's Wait began
	g.conns[c] = struct{}{}
	set := g.byKey[c.pkey]
	if set == nil {
		set = make(map[*conn]struct{})
		g.byKey[c.pkey] = set
	}
	set[c] = struct{}{}
	return true, false
}

func (g *Gate) remove(c *conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	defer g.relaysWG.Done()
	delete(g.conns, c)
	if set := g.byKey[c.pkey]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(g.byKey, c.pkey)
		}
	}
}

func (g *Gate) isClosing() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closing
}

func (g *Gate) newConnID() string {
	var b [12]byte
	if _, err := io.ReadFull(g.o.Rand, b[:]); err != nil {
		return fmt.Sprintf("c%d", g.o.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}

// principalKey is the registry's name for p.
func principalKey(p reqinfo.Principal) string { return p.Kind + ":" + p.ID }

// queryKeyNames are query parameters that carry API keys; a WebSocket
// request with any of them is refused before anything else.
var queryKeyNames = []string{"api_key", "apikey", "api-key", "key", "token", "access_token", "x-api-key"}

// queryCarriesKey reports whether rawQuery names a key parameter or holds
// something shaped like a rampart key.
func queryCarriesKey(rawQuery string) bool {
	if strings.Contains(rawQuery, "rk_live_") || strings.Contains(rawQuery, "rk_test_") ||
		strings.Contains(rawQuery, "rk%5Flive%5F") || strings.Contains(rawQuery, "rk%5Ftest%5F") {
		return true
	}
	for rawQuery != "" {
		var part string
		part, rawQuery, _ = strings.Cut(rawQuery, "&")
		name, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		for _, k := range queryKeyNames {
			if strings.EqualFold(name, k) {
				return true
			}
		}
	}
	return false
}

// splitTicket returns the ticket values in rawQuery and the query without
// them, other parameters untouched.
func splitTicket(rawQuery string) (tickets []string, rest string) {
	var kept []string
	for rawQuery != "" {
		var part string
		part, rawQuery, _ = strings.Cut(rawQuery, "&")
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if name == "ticket" {
			if v, err := url.QueryUnescape(value); err == nil {
				value = v
			}
			tickets = append(tickets, value)
			continue
		}
		kept = append(kept, part)
	}
	return tickets, strings.Join(kept, "&")
}

// sameHost reports whether origin's host is the request's Host.
func sameHost(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
