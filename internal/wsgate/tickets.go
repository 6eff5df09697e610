package wsgate

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"time"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// DefaultTicketTTL is how long a ticket works unless configured.
const DefaultTicketTTL = 30 * time.Second

// TicketsOptions configures [NewTickets].
type TicketsOptions struct {
	// Store keeps issued tickets; default an in-memory store (one
	// instance). Several instances need a shared store (wsredis.Tickets).
	Store TicketStore
	// TTL is how long a ticket works; default 30 s, at most 10 min.
	TTL time.Duration
	// BindClientIP makes a ticket redeemable only from the client IP
	// (reqinfo.Info.ClientIP) that requested it.
	BindClientIP bool
	// BindOrigin makes a ticket redeemable only with the Origin header the
	// ticket request carried (none if it carried none).
	BindOrigin bool
	// Rand is the source of ticket secrets; default crypto/rand.
	Rand io.Reader
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Log receives store failures; default slog.Default().
	Log *slog.Logger
}

// Tickets issues and redeems single-use WebSocket tickets.
type Tickets struct {
	store      TicketStore
	ttl        time.Duration
	bindIP     bool
	bindOrigin bool
	rand       io.Reader
	now        func() time.Time
	log        *slog.Logger
}

// NewTickets validates o and returns the ticket service.
func NewTickets(o TicketsOptions) (*Tickets, error) {
	if o.TTL == 0 {
		o.TTL = DefaultTicketTTL
	}
	if o.TTL < time.Second || o.TTL > 10*time.Minute {
		return nil, fmt.Errorf("ticket ttl %s out of range 1s..10m", o.TTL)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Store == nil {
		s, err := NewMemoryTickets(MemoryTicketsOptions{Now: o.Now})
		if err != nil {
			return nil, err
		}
		o.Store = s
	}
	return &Tickets{store: o.Store, ttl: o.TTL, bindIP: o.BindClientIP, bindOrigin: o.BindOrigin, rand: o.Rand, now: o.Now, log: o.Log}, nil
}

// TTL returns how long a ticket works.
func (t *Tickets) TTL() time.Duration { return t.ttl }

// Issue creates a ticket for p, bound (as configured) to the client IP and
// Origin of the request asking for it.
func (t *Tickets) Issue(ctx context.Context, p reqinfo.Principal, clientIP netip.Addr, origin string) (Ticket, Grant, error) {
	if p.Anonymous() {
		return Ticket{}, Grant{}, errors.New("issue ticket: anonymous principal")
	}
	tk, err := NewTicket(t.rand)
	if err != nil {
		return Ticket{}, Grant{}, err
	}
	g := Grant{Principal: p, ExpiresAt: t.now().Add(t.ttl)}
	if t.bindIP {
		g.ClientIP = clientIP
	}
	if t.bindOrigin {
		g.Origin = origin
		if g.Origin == "" {
			g.Origin = noOrigin
		}
	}
	if err := t.store.Issue(ctx, tk.Key(), g, t.ttl); err != nil {
		return Ticket{}, Grant{}, fmt.Errorf("store ticket: %w", err)
	}
	return tk, g, nil
}

// noOrigin binds a ticket to requests that send no Origin header.
const noOrigin = "-"

// Redeem consumes the ticket text and returns its grant. It returns
// ErrTicketMalformed, an error wrapping ErrTicketInvalid, or a store error.
// A ticket presented from the wrong client IP or Origin is consumed and
// refused.
func (t *Tickets) Redeem(ctx context.Context, text string, clientIP netip.Addr, origin string) (Grant, error) {
	tk, err := ParseTicket(text)
	if err != nil {
		return Grant{}, err
	}
	g, err := t.store.Redeem(ctx, tk.Key())
	if err != nil {
		if errors.Is(err, ErrTicketInvalid) {
			return Grant{}, err
		}
		return Grant{}, fmt.Errorf("redeem ticket: %w", err)
	}
	if !t.now().Before(g.ExpiresAt) {
		return Grant{}, fmt.Errorf("%w: expired", ErrTicketInvalid)
	}
	if g.ClientIP.IsValid() && g.ClientIP.Unmap() != clientIP.Unmap() {
		return Grant{}, fmt.Errorf("%w: client IP differs", ErrTicketInvalid)
	}
	if g.Origin != "" {
		want := origin
		if want == "" {
			want = noOrigin
		}
		if g.Origin != want {
			return Grant{}, fmt.Errorf("%w: origin differs", ErrTicketInvalid)
		}
	}
	return g, nil
}

// TicketResponse is the JSON body of a successful ticket request.
type TicketResponse struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"` // seconds
}

// Handler answers POST with a new ticket for the request's principal,
// which the authentication middleware in front of it must have set in
// reqinfo; without one it answers 401. Any other method is 405.
func (t *Tickets) Handler() http.Handler {
	expiresIn := int(math.Ceil(t.ttl.Seconds()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			reqinfo.Reject(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "use POST to request a ticket")
			return
		}
		info := reqinfo.From(r.Context())
		if info == nil || info.Principal.Anonymous() {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
			reqinfo.Reject(w, r, http.StatusUnauthorized, OutcomeTicketUnauthenticated, "authentication is required to request a ticket")
			return
		}
		tk, _, err := t.Issue(r.Context(), info.Principal, info.ClientIP, r.Header.Get("Origin"))
		if err != nil {
			t.log.Error("websocket ticket not issued", "error", err, "key_id", info.Principal.ID)
			reqinfo.Reject(w, r, http.StatusServiceUnavailable, OutcomeTicketUnavailable, "tickets are unavailable, retry shortly")
			return
		}
		body, _ := json.Marshal(TicketResponse{Ticket: tk.Text(), ExpiresIn: expiresIn})
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(append(body, '\n'))
	})
}
