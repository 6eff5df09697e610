package wsgate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/rampart-security/rampart/internal/clientip"
	"github.com/rampart-security/rampart/internal/ratelimit"
	"github.com/rampart-security/rampart/internal/redact"
	"github.com/rampart-security/rampart/internal/reqinfo"
)

// Headers set on the upstream handshake. Nothing else from the client's
// request is forwarded except its requested subprotocols.
const (
	HeaderKeyID       = "X-Rampart-Key-ID"
	HeaderUser        = "X-Rampart-User"
	HeaderPermissions = "X-Rampart-Permissions"
)

type routeHandler struct {
	g    *Gate
	name string
	base *url.URL
	perm reqinfo.Permission
}

func (h *routeHandler) refuse(w http.ResponseWriter, r *http.Request, ev Event, status int, outcome, msg string) {
	reqinfo.Reject(w, r, status, outcome, msg)
	ev.Code, ev.Reason = status, outcome
	if f := h.g.o.OnRefuse; f != nil {
		f(ev)
	}
}

func (h *routeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.g
	info := reqinfo.From(r.Context())
	ev := Event{Route: h.name}
	if info != nil {
		ev.ClientIP, ev.RequestID = info.ClientIP, info.ID
		info.Route = orDefault(info.Route, h.name)
	} else {
		ev.ClientIP, _ = clientip.Peer(r.RemoteAddr)
	}
	if queryCarriesKey(r.URL.RawQuery) {
		h.refuse(w, r, ev, http.StatusUnauthorized, OutcomeKeyInQuery, "credentials in the URL are not accepted; request a ticket")
		return
	}
	if r.Method != http.MethodGet || !isUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		h.refuse(w, r, ev, http.StatusUpgradeRequired, OutcomeNotUpgrade, "this route accepts WebSocket upgrades only")
		return
	}
	origin := r.Header.Get("Origin")
	if origin != "" {
		if !sameHost(origin, r.Host) && (g.o.CheckOrigin == nil || !g.o.CheckOrigin(origin)) {
			h.refuse(w, r, ev, http.StatusForbidden, OutcomeOriginForbidden, "this origin may not open WebSockets")
			return
		}
	}
	tickets, rest := splitTicket(r.URL.RawQuery)
	switch {
	case len(tickets) == 0 || tickets[0] == "":
		h.refuse(w, r, ev, http.StatusUnauthorized, OutcomeTicketMissing, "a ticket is required")
		return
	case len(tickets) > 1:
		h.refuse(w, r, ev, http.StatusUnauthorized, OutcomeTicketMalformed, "the ticket is invalid or expired")
		return
	}
	if g.isClosing() {
		h.refuse(w, r, ev, http.StatusServiceUnavailable, OutcomeShuttingDown, "the server is shutting down")
		return
	}
	grant, err := g.o.Tickets.Redeem(r.Context(), tickets[0], ev.ClientIP, origin)
	switch {
	case errors.Is(err, ErrTicketMalformed):
		h.refuse(w, r, ev, http.StatusUnauthorized, OutcomeTicketMalformed, "the ticket is invalid or expired")
		return
	case errors.Is(err, ErrTicketInvalid):
		h.refuse(w, r, ev, http.StatusUnauthorized, OutcomeTicketInvalid, "the ticket is invalid or expired")
		return
	case err != nil:
		g.log.Error("websocket ticket store failed", "error", err, "route", h.name)
		h.refuse(w, r, ev, http.StatusServiceUnavailable, OutcomeTicketUnavailable, "retry shortly")
		return
	}
	p := grant.Principal
	ev.Principal = p
	if info != nil {
		info.Principal = p
	}
	if g.isRevoked(p) { // the ticket was issued before its key was revoked
		h.refuse(w, r, ev, http.StatusUnauthorized, OutcomeTicketInvalid, "the ticket is invalid or expired")
		return
	}
	if h.perm != 0 && !p.Permissions.Has(h.perm) {
		h.refuse(w, r, ev, http.StatusForbidden, OutcomeForbidden, "this credential may not use this route")
		return
	}

	c := &conn{g: g, id: g.newConnID(), route: h.name, principal: p, pkey: principalKey(p)}
	ev.ConnID = c.id
	slot := Slot{Principal: c.pkey, ConnID: c.id, MaxPerPrincipal: g.o.MaxPerPrincipal, MaxTotal: g.o.MaxTotal}
	if err := g.o.Registry.Acquire(r.Context(), slot); err != nil {
		switch {
		case errors.Is(err, ErrPrincipalLimit):
			h.refuseAfterUpgrade(w, r, ev, OutcomeLimitPrincipal, "connection limit exceeded")
		case errors.Is(err, ErrGlobalLimit):
			h.refuseAfterUpgrade(w, r, ev, OutcomeLimitGlobal, "server connection limit reached")
		default:
			g.log.Error("websocket registry failed", "error", err, "route", h.name)
			h.refuse(w, r, ev, http.StatusServiceUnavailable, OutcomeRegistryUnavailable, "retry shortly")
		}
		return
	}
	release := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.o.Registry.Release(ctx, slot); err != nil {
			g.log.Error("websocket registry release failed", "error", err, "route", h.name)
		}
	}

	up, err := h.dial(r, c, rest)
	if err != nil {
		release()
		g.log.Warn("websocket upstream dial failed", "error", redact.Error(err), "route", h.name)
		h.refuse(w, r, ev, http.StatusBadGateway, OutcomeUpstreamUnavailable, "the upstream is unavailable")
		return
	}
	var protos []string
	if sp := up.Subprotocol(); sp != "" {
		protos = []string{sp}
	}
	cl, err := websocket.Accept(deadlineClearer{w}, r, &websocket.AcceptOptions{
		Subprotocols:       protos,
		InsecureSkipVerify: true, // the Origin was checked above
		CompressionMode:    websocket.CompressionDisabled,
		OnPongReceived:     func(context.Context, []byte) { c.clientPong.Store(c.pingSeq.Load()) },
	})
	if err != nil {
		release()
		_ = up.Close(websocket.StatusGoingAway, "client handshake failed")
		return // Accept has answered the client
	}
	c.client, c.upstream = cl, up
	cl.SetReadLimit(g.o.MaxMessageBytes)
	up.SetReadLimit(g.o.MaxUpstreamMessageBytes)
	c.opened = g.o.Now()
	c.last.Store(c.opened.UnixNano())
	if ok, revoked := g.add(c); !ok {
		release()
		code, reason := websocket.StatusGoingAway, "server shutting down"
		if revoked {
			code, reason = websocket.StatusPolicyViolation, "credential revoked"
		}
		_ = cl.Close(code, reason)
		_ = up.Close(websocket.StatusGoingAway, reason)
		return
	}
	ev.Opened, ev.Subprotocol = c.opened, cl.Subprotocol()
	if f := g.o.OnOpen; f != nil {
		f(ev)
	}
	// The handler returns now: the connection is hijacked, and fresh
	// goroutines hold far smaller stacks than the one that parsed the
	// request and dialed the upstream (memory per idle connection).
	go func() {
		c.relay()
		g.remove(c)
		release()
		ev.Duration = g.o.Now().Sub(c.opened)
		ev.Code, ev.Reason = c.code, c.reason
		if f := g.o.OnClose; f != nil {
			f(ev)
		}
	}()
}

// refuseAfterUpgrade accepts the WebSocket and closes it with 1008 and a
// reason a browser can read, where an HTTP status would be opaque.
func (h *routeHandler) refuseAfterUpgrade(w http.ResponseWriter, r *http.Request, ev Event, outcome, reason string) {
	if info := reqinfo.From(r.Context()); info != nil {
		info.Outcome = outcome
	}
	ev.Code, ev.Reason = int(websocket.StatusPolicyViolation), outcome
	if f := h.g.o.OnRefuse; f != nil {
		f(ev)
	}
	cl, err := websocket.Accept(deadlineClearer{w}, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return
	}
	_ = cl.Close(websocket.StatusPolicyViolation, reason)
}

// dial opens the upstream WebSocket for r.
func (h *routeHandler) dial(r *http.Request, c *conn, rawQuery string) (*websocket.Conn, error) {
	u := *h.base
	u.Path = strings.TrimSuffix(h.base.Path, "/") + r.URL.Path
	u.RawPath = strings.TrimSuffix(h.base.EscapedPath(), "/") + r.URL.EscapedPath()
	u.RawQuery = rawQuery
	hdr := http.Header{}
	switch c.principal.Kind {
	case "api_key":
		hdr.Set(HeaderKeyID, c.principal.ID)
	default:
		hdr.Set(HeaderUser, c.principal.ID)
	}
	if perm := c.principal.Permissions.Implied().String(); perm != "" {
		hdr.Set(HeaderPermissions, perm)
	}
	if id := r.Header.Get(reqinfo.RequestIDHeader); id != "" {
		hdr.Set(reqinfo.RequestIDHeader, id)
	}
	if info := reqinfo.From(r.Context()); info != nil && info.ClientIP.IsValid() {
		hdr.Set("X-Forwarded-For", info.ClientIP.String())
	}
	if r.TLS != nil {
		hdr.Set("X-Forwarded-Proto", "https")
	} else {
		hdr.Set("X-Forwarded-Proto", "http")
	}
	var protos []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				protos = append(protos, p)
			}
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.g.o.DialTimeout)
	defer cancel()
	up, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient:      h.g.client,
		HTTPHeader:      hdr,
		Subprotocols:    protos,
		CompressionMode: websocket.CompressionDisabled,
		OnPongReceived:  func(context.Context, []byte) { c.upstreamPong.Store(c.pingSeq.Load()) },
	})
	if resp != nil && resp.Body != nil && err != nil {
		_ = resp.Body.Close()
	}
	return up, err
}

// conn is one relayed client–upstream pair.
type conn struct {
	g         *Gate
	id        string
	route     string
	principal reqinfo.Principal
	pkey      string
	client    *websocket.Conn
	upstream  *websocket.Conn
	opened    time.Time
	last      atomic.Int64 // unix nanoseconds of the last data message either way

	// Ping rounds, driven by the maintenance loop: pingSeq is the round
	// last sent; each side's OnPongReceived records the round current
	// when its pong arrived.
	pingSeq      atomic.Int64
	clientPong   atomic.Int64
	upstreamPong atomic.Int64

	tat time.Time // message-rate state, client pump only

	once    sync.Once
	closers sync.WaitGroup
	reason  string // set once, read after relay returns
	code    int
}

// relay pumps both directions until both sides are closed.
func (c *conn) relay() {
	var pumps sync.WaitGroup
	pumps.Go(func() { c.pump(c.upstream, c.client, false) })
	c.pump(c.client, c.upstream, true)
	pumps.Wait()
	// Both readers ended; if neither decided why, close what remains.
	c.terminate(ReasonClientGone, 0, "", websocket.StatusGoingAway)
	c.closers.Wait()
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// pump copies whole messages from src to dst. fromClient selects the
// client-side policies (message rate) and how src's end is reported.
func (c *conn) pump(src, dst *websocket.Conn, fromClient bool) {
	ctx := context.Background()
	for {
		typ, rd, err := src.Reader(ctx)
		if err != nil {
			c.srcEnded(fromClient, err)
			return
		}
		buf := bufPool.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(rd)
		if err != nil {
			putBuf(buf)
			c.srcEnded(fromClient, err)
			return
		}
		now := c.g.o.Now()
		c.last.Store(now.UnixNano())
		if fromClient && c.g.o.MessageRate.Count > 0 {
			res, next, rerr := ratelimit.Decide(now, c.tat, c.g.o.MessageRate, 1)
			if rerr != nil || !res.Allowed {
				putBuf(buf)
				c.terminate(ReasonRateLimited, websocket.StatusPolicyViolation, "message rate exceeded", websocket.StatusGoingAway)
				return
			}
			c.tat = next
		}
		err = dst.Write(ctx, typ, buf.Bytes())
		putBuf(buf)
		if err != nil {
			// dst's own reader reports why it ended.
			return
		}
	}
}

func putBuf(b *bytes.Buffer) {
	if b.Cap() > 256<<10 {
		return // do not keep rare huge buffers alive
	}
	bufPool.Put(b)
}

// srcEnded decides what the end of one side's reads means for the other.
func (c *conn) srcEnded(fromClient bool, err error) {
	code := websocket.CloseStatus(err)
	var ce websocket.CloseError
	reason := ""
	if errors.As(err, &ce) {
		reason = ce.Reason
	}
	switch {
	case fromClient && errors.Is(err, websocket.ErrMessageTooBig):
		// The library has closed the client with 1009.
		c.finish(ReasonTooBig, int(websocket.StatusMessageTooBig), nil, c.upstream, websocket.StatusGoingAway, "client message too big")
	case !fromClient && errors.Is(err, websocket.ErrMessageTooBig):
		c.finish(ReasonUpstreamGone, int(websocket.StatusBadGateway), c.client, nil, websocket.StatusBadGateway, "upstream message too big")
	case code != -1 && fromClient:
		c.finish(ReasonClientClosed, int(code), nil, c.upstream, code, reason)
	case code != -1:
		c.finish(ReasonUpstreamClosed, int(code), c.client, nil, code, reason)
	case fromClient:
		c.finish(ReasonClientGone, 0, nil, c.upstream, websocket.StatusGoingAway, "client gone")
	default:
		c.finish(ReasonUpstreamGone, int(websocket.StatusBadGateway), c.client, nil, websocket.StatusBadGateway, "upstream gone")
	}
}

// finish records why the pair ends (first caller wins) and closes the
// other side with code and reason: the side whose reads ended is already
// closed by the library. Exactly one of toClient and toUpstream is set.
func (c *conn) finish(why string, eventCode int, toClient, toUpstream *websocket.Conn, code websocket.StatusCode, reason string) {
	c.once.Do(func() {
		c.reason, c.code = why, eventCode
		other := toClient
		if other == nil {
			other = toUpstream
		}
		done := c.client
		if other == c.client {
			done = c.upstream
		}
		c.closers.Go(func() { _ = done.CloseNow() })
		c.closers.Go(func() { closeWith(other, code, reason) })
	})
}

// terminate ends the pair for a gate policy: the client is closed with
// clientCode and reason, the upstream with upstreamCode. A zero clientCode
// closes both without a handshake.
func (c *conn) terminate(why string, clientCode websocket.StatusCode, reason string, upstreamCode websocket.StatusCode) {
	c.once.Do(func() {
		c.reason, c.code = why, int(clientCode)
		if clientCode == 0 {
			c.closers.Go(func() { _ = c.client.CloseNow() })
			c.closers.Go(func() { closeWith(c.upstream, upstreamCode, "") })
			return
		}
		c.closers.Go(func() { closeWith(c.client, clientCode, reason) })
		c.closers.Go(func() { closeWith(c.upstream, upstreamCode, "") })
	})
}

// drop ends the pair because one side stopped answering pings: that side
// is cut without a handshake, the other closed normally.
func (c *conn) drop(clientDead bool) {
	c.once.Do(func() {
		c.reason = ReasonPingTimeout
		if clientDead {
			c.closers.Go(func() { _ = c.client.CloseNow() })
			c.closers.Go(func() { closeWith(c.upstream, websocket.StatusGoingAway, "client not responding") })
			return
		}
		c.code = int(websocket.StatusBadGateway)
		c.closers.Go(func() { _ = c.upstream.CloseNow() })
		c.closers.Go(func() { closeWith(c.client, websocket.StatusBadGateway, "upstream not responding") })
	})
}

// abort cuts both sides at once (shutdown deadline).
func (c *conn) abort() {
	_ = c.client.CloseNow()
	_ = c.upstream.CloseNow()
}

// closeWith closes ws with code (1005 and 1006 cannot be sent: they become
// a close frame without a status, or none) and a reason trimmed to fit.
func closeWith(ws *websocket.Conn, code websocket.StatusCode, reason string) {
	if code == websocket.StatusAbnormalClosure || code == websocket.StatusTLSHandshake {
		_ = ws.CloseNow()
		return
	}
	if len(reason) > 123 {
		reason = reason[:123]
	}
	if code == websocket.StatusNoStatusRcvd {
		reason = ""
	}
	_ = ws.Close(code, reason)
}

// pingRound checks the previous ping round and starts the next one. A side
// that has not answered the previous round is dropped, the client checked
// first.
func (c *conn) pingRound() {
	if seq := c.pingSeq.Load(); seq > 0 {
		if c.clientPong.Load() < seq {
			c.drop(true)
			return
		}
		if c.upstreamPong.Load() < seq {
			c.drop(false)
			return
		}
	}
	c.pingSeq.Add(1)
	// Ping returns when the pong arrives or the connection closes; a side
	// that never answers is dropped on the next round, which ends it.
	go func() { _ = c.client.Ping(context.Background()) }()
	go func() { _ = c.upstream.Ping(context.Background()) }()
}

// deadlineClearer clears the deadlines net/http set on the connection for
// the handshake request, which would otherwise cut long-lived sockets.
type deadlineClearer struct{ http.ResponseWriter }

func (d deadlineClearer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, rw, err := http.NewResponseController(d.ResponseWriter).Hijack()
	if err == nil {
		_ = nc.SetDeadline(time.Time{})
	}
	return nc, rw, err
}

func (d deadlineClearer) Unwrap() http.ResponseWriter { return d.ResponseWriter }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
