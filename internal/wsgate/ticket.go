package wsgate

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// TicketPrefix starts every ticket so that secret scanners and people
// recognise one.
const TicketPrefix = "rwt_"

const (
	ticketSecretLen = 24 // 192 bits from the random source
	ticketRawLen    = ticketSecretLen + 4
	// TicketLen is the length of a ticket's text.
	TicketLen = len(TicketPrefix) + (ticketRawLen*8+5)/6
)

var (
	ticketEncoding = base64.RawURLEncoding.Strict()
	crcTable       = crc32.MakeTable(crc32.Castagnoli)
)

// Ticket errors. Clients are never told which one applied.
var (
	// ErrTicketMalformed: the text is not a ticket (wrong prefix, length,
	// alphabet or checksum). No store is consulted.
	ErrTicketMalformed = errors.New("wsgate: malformed ticket")
	// ErrTicketInvalid: well-formed but unknown, already used, expired, or
	// presented from another client IP or Origin than it is bound to.
	ErrTicketInvalid = errors.New("wsgate: invalid ticket")
	// ErrTicketStoreFull is returned by [MemoryTickets.Issue] when it holds
	// its maximum of unexpired tickets.
	ErrTicketStoreFull = errors.New("wsgate: ticket store full")
)

// Ticket is a parsed ticket. Its String and LogValue are redacted; Text
// returns the secret form, which only the ticket endpoint writes.
type Ticket struct {
	secret [ticketSecretLen]byte
}

// NewTicket reads a ticket's 192 secret bits from r.
func NewTicket(r io.Reader) (Ticket, error) {
	var t Ticket
	if _, err := io.ReadFull(r, t.secret[:]); err != nil {
		return Ticket{}, fmt.Errorf("read ticket randomness: %w", err)
	}
	return t, nil
}

// ParseTicket parses a ticket's text: the prefix, then base64url (no
// padding, canonical) of the secret and its CRC-32C. Anything else is
// ErrTicketMalformed, so garbage never reaches a store.
func ParseTicket(s string) (Ticket, error) {
	if len(s) != TicketLen || s[:len(TicketPrefix)] != TicketPrefix {
		return Ticket{}, ErrTicketMalformed
	}
	var raw [ticketRawLen]byte
	n, err := ticketEncoding.Decode(raw[:], []byte(s[len(TicketPrefix):]))
	if err != nil || n != ticketRawLen {
		return Ticket{}, ErrTicketMalformed
	}
	var t Ticket
	copy(t.secret[:], raw[:ticketSecretLen])
	if binary.BigEndian.Uint32(raw[ticketSecretLen:]) != crc32.Checksum(t.secret[:], crcTable) {
		return Ticket{}, ErrTicketMalformed
	}
	return t, nil
}

// Text returns the ticket as given to the client.
func (t Ticket) Text() string {
	var raw [ticketRawLen]byte
	copy(raw[:], t.secret[:])
	binary.BigEndian.PutUint32(raw[ticketSecretLen:], crc32.Checksum(t.secret[:], crcTable))
	return TicketPrefix + ticketEncoding.EncodeToString(raw[:])
}

// Key returns the name a store keeps the ticket under: the hex SHA-256 of
// its secret, so a store's contents cannot be replayed as tickets.
func (t Ticket) Key() string {
	sum := sha256.Sum256(t.secret[:])
	return hex.EncodeToString(sum[:])
}

// String is redacted.
func (t Ticket) String() string { return TicketPrefix + "REDACTED" }

// LogValue is redacted.
func (t Ticket) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Grant is what a ticket stands for.
type Grant struct {
	Principal reqinfo.Principal `json:"principal"`
	// ClientIP, when valid, is the only client IP that may redeem the ticket.
	ClientIP netip.Addr `json:"client_ip,omitzero"`
	// Origin, when set, is the only Origin that may redeem the ticket.
	Origin string `json:"origin,omitempty"`
	// ExpiresAt is when the ticket stops working.
	ExpiresAt time.Time `json:"expires_at"`
}

// TicketStore keeps grants under ticket keys ([Ticket.Key]).
//
// Redeem must be atomic: of any number of concurrent calls for one key, on
// any number of instances, at most one returns the grant.
type TicketStore interface {
	// Issue stores g under key for ttl.
	Issue(ctx context.Context, key string, g Grant, ttl time.Duration) error
	// Redeem removes and returns the grant under key. It returns an error
	// wrapping ErrTicketInvalid when there is none (never issued, already
	// redeemed or expired); any other error means the store failed.
	Redeem(ctx context.Context, key string) (Grant, error)
}

// MemoryTicketsOptions configures [NewMemoryTickets].
type MemoryTicketsOptions struct {
	// Max bounds the unexpired tickets held; default 100 000.
	Max int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// MemoryTickets is a TicketStore for a single instance.
type MemoryTickets struct {
	mu      sync.Mutex
	tickets map[string]memTicket
	max     int
	now     func() time.Time
}

type memTicket struct {
	grant   Grant
	expires time.Time
}

// NewMemoryTickets returns an empty in-memory ticket store.
func NewMemoryTickets(o MemoryTicketsOptions) (*MemoryTickets, error) {
	if o.Max < 0 {
		return nil, fmt.Errorf("memory tickets: max %d is negative", o.Max)
	}
	if o.Max == 0 {
		o.Max = 100_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &MemoryTickets{tickets: make(map[string]memTicket), max: o.Max, now: o.Now}, nil
}

// Issue implements TicketStore. When the store is full it first drops
// expired tickets and returns ErrTicketStoreFull if that frees nothing.
func (m *MemoryTickets) Issue(_ context.Context, key string, g Grant, ttl time.Duration) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.tickets) >= m.max {
		for k, t := range m.tickets {
			if !now.Before(t.expires) {
				delete(m.tickets, k)
			}
		}
		if len(m.tickets) >= m.max {
			return ErrTicketStoreFull
		}
	}
	m.tickets[key] = memTicket{grant: g, expires: now.Add(ttl)}
	return nil
}

// Redeem implements TicketStore.
func (m *MemoryTickets) Redeem(_ context.Context, key string) (Grant, error) {
	now := m.now()
	m.mu.Lock()
	t, ok := m.tickets[key]
	delete(m.tickets, key)
	m.mu.Unlock()
	if !ok || !now.Before(t.expires) {
		return Grant{}, ErrTicketInvalid
	}
	return t.grant, nil
}

// Len returns how many tickets are held, expired ones included until they
// are dropped.
func (m *MemoryTickets) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tickets)
}
