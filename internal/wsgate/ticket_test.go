package wsgate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/wsgate"
	"github.com/rampart-security/rampart/internal/wsgate/wsgatetest"
)

func TestMemoryTicketsContract(t *testing.T) {
	wsgatetest.TicketStoreContract(t, func(t *testing.T) wsgate.TicketStore {
		s, err := wsgate.NewMemoryTickets(wsgate.MemoryTicketsOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestMemoryTicketsBoundedAndExpiring(t *testing.T) {
	clock := wsgatetest.NewClock()
	s, err := wsgate.NewMemoryTickets(wsgate.MemoryTicketsOptions{Max: 3, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g := wsgate.Grant{Principal: reqinfo.Principal{Kind: "api_key", ID: "k"}}
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Issue(ctx, k, g, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Issue(ctx, "d", g, 30*time.Second); !errors.Is(err, wsgate.ErrTicketStoreFull) {
		t.Fatalf("4th ticket in a store of 3: %v, want ErrTicketStoreFull", err)
	}
	clock.Advance(30 * time.Second)
	if err := s.Issue(ctx, "e", g, 30*time.Second); err != nil {
		t.Fatalf("issue after the others expired: %v", err)
	}
	if n := s.Len(); n != 1 {
		t.Errorf("store holds %d tickets after dropping expired ones, want 1", n)
	}
	if _, err := s.Redeem(ctx, "e"); err != nil {
		t.Errorf("fresh ticket: %v", err)
	}
	clock.Advance(30 * time.Second)
	if err := s.Issue(ctx, "f", g, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	if _, err := s.Redeem(ctx, "f"); !errors.Is(err, wsgate.ErrTicketInvalid) {
		t.Errorf("expired ticket redeemed: %v", err)
	}
}

func TestParseTicket(t *testing.T) {
	good, err := wsgate.NewTicket(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	text := good.Text()
	flip := []byte(text)
	flip[10] ^= 1
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid", text, true},
		{"empty", "", false},
		{"prefix only", wsgate.TicketPrefix, false},
		{"wrong prefix", "rwx_" + text[4:], false},
		{"truncated", text[:len(text)-1], false},
		{"extended", text + "A", false},
		{"flipped bit breaks the checksum", string(flip), false},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(text[:4]) + strings.Repeat("+", len(text)-4), false},
		{"uuid like the checklist's", "1b4e28ba-2fa1-11d2-883f-0016d3cca427", false},
		{"api key", "rk_live_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wsgate.ParseTicket(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseTicket(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil && !errors.Is(err, wsgate.ErrTicketMalformed) {
				t.Errorf("error %v is not ErrTicketMalformed", err)
			}
			if tt.ok && got.Text() != tt.in {
				t.Errorf("round trip %q -> %q", tt.in, got.Text())
			}
		})
	}
	if len(text) != wsgate.TicketLen || !strings.HasPrefix(text, wsgate.TicketPrefix) {
		t.Errorf("ticket %q: length %d, want %d with prefix %s", text, len(text), wsgate.TicketLen, wsgate.TicketPrefix)
	}
	if s := good.String(); strings.Contains(s, text[4:10]) {
		t.Errorf("String() leaks the ticket: %q", s)
	}
}

func FuzzParseTicket(f *testing.F) {
	tk, _ := wsgate.NewTicket(bytes.NewReader(bytes.Repeat([]byte{1, 2, 3}, 16)))
	f.Add(tk.Text())
	f.Add("")
	f.Add(wsgate.TicketPrefix)
	f.Add("rwt_" + strings.Repeat("A", wsgate.TicketLen-4))
	f.Add("rwt_" + strings.Repeat("_", wsgate.TicketLen-4))
	f.Fuzz(func(t *testing.T, s string) {
		got, err := wsgate.ParseTicket(s)
		if err != nil {
			if !errors.Is(err, wsgate.ErrTicketMalformed) {
				t.Fatalf("error %v is not ErrTicketMalformed", err)
			}
			return
		}
		if got.Text() != s {
			t.Fatalf("accepted %q but renders %q: parsing is not canonical", s, got.Text())
		}
		if len(got.Key()) != 64 {
			t.Fatalf("key %q", got.Key())
		}
	})
}

func newTickets(t *testing.T, o wsgate.TicketsOptions) *wsgate.Tickets {
	t.Helper()
	tk, err := wsgate.NewTickets(o)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestTicketsRedeem(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.2")
	p := reqinfo.Principal{Kind: "api_key", ID: "k1", Permissions: reqinfo.PermRead}
	tests := []struct {
		name       string
		opts       wsgate.TicketsOptions
		issueFrom  netip.Addr
		issueOrig  string
		advance    time.Duration
		redeemFrom netip.Addr
		redeemOrig string
		want       error
	}{
		{name: "fresh", issueFrom: ip, redeemFrom: other, want: nil},
		{name: "just before expiry", advance: 29*time.Second + 999*time.Millisecond, want: nil},
		{name: "expired", advance: 30 * time.Second, want: wsgate.ErrTicketInvalid},
		{name: "shorter ttl expired", opts: wsgate.TicketsOptions{TTL: 5 * time.Second}, advance: 5 * time.Second, want: wsgate.ErrTicketInvalid},
		{name: "bound ip same", opts: wsgate.TicketsOptions{BindClientIP: true}, issueFrom: ip, redeemFrom: netip.MustParseAddr("::ffff:192.0.2.1"), want: nil},
		{name: "bound ip other", opts: wsgate.TicketsOptions{BindClientIP: true}, issueFrom: ip, redeemFrom: other, want: wsgate.ErrTicketInvalid},
		{name: "bound origin same", opts: wsgate.TicketsOptions{BindOrigin: true}, issueOrig: "https://a.example", redeemOrig: "https://a.example", want: nil},
		{name: "bound origin other", opts: wsgate.TicketsOptions{BindOrigin: true}, issueOrig: "https://a.example", redeemOrig: "https://b.example", want: wsgate.ErrTicketInvalid},
		{name: "bound to no origin, browser redeems", opts: wsgate.TicketsOptions{BindOrigin: true}, redeemOrig: "https://a.example", want: wsgate.ErrTicketInvalid},
		{name: "unbound origin ignored", issueOrig: "https://a.example", redeemOrig: "https://b.example", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := wsgatetest.NewClock()
			tt.opts.Now = clock.Now
			tk := newTickets(t, tt.opts)
			ticket, _, err := tk.Issue(context.Background(), p, tt.issueFrom, tt.issueOrig)
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(tt.advance)
			g, err := tk.Redeem(context.Background(), ticket.Text(), tt.redeemFrom, tt.redeemOrig)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Redeem: %v, want %v", err, tt.want)
			}
			if err == nil && g.Principal != p {
				t.Errorf("principal %+v, want %+v", g.Principal, p)
			}
			if _, err := tk.Redeem(context.Background(), ticket.Text(), tt.redeemFrom, tt.redeemOrig); !errors.Is(err, wsgate.ErrTicketInvalid) {
				t.Errorf("second redeem: %v, want ErrTicketInvalid", err)
			}
		})
	}
}

func TestTicketsOptions(t *testing.T) {
	for _, o := range []wsgate.TicketsOptions{{TTL: time.Millisecond}, {TTL: time.Hour}, {TTL: -time.Second}} {
		if _, err := wsgate.NewTickets(o); err == nil {
			t.Errorf("NewTickets(TTL %s) accepted", o.TTL)
		}
	}
}

type failingStore struct{}

func (failingStore) Issue(context.Context, string, wsgate.Grant, time.Duration) error {
	return errors.New("store down")
}
func (failingStore) Redeem(context.Context, string) (wsgate.Grant, error) {
	return wsgate.Grant{}, errors.New("store down")
}

func TestTicketHandler(t *testing.T) {
	rnd := bytes.Repeat([]byte{0xA5}, 24)
	want, _ := wsgate.NewTicket(bytes.NewReader(rnd))
	principal := reqinfo.Principal{Kind: "api_key", ID: "k_handler", Permissions: reqinfo.PermRead}
	tests := []struct {
		name      string
		method    string
		principal reqinfo.Principal
		store     wsgate.TicketStore
		status    int
		outcome   string
	}{
		{"issues", http.MethodPost, principal, nil, http.StatusOK, ""},
		{"anonymous", http.MethodPost, reqinfo.Principal{}, nil, http.StatusUnauthorized, wsgate.OutcomeTicketUnauthenticated},
		{"get", http.MethodGet, principal, nil, http.StatusMethodNotAllowed, "method_not_allowed"},
		{"store down", http.MethodPost, principal, failingStore{}, http.StatusServiceUnavailable, wsgate.OutcomeTicketUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := newTickets(t, wsgate.TicketsOptions{Rand: bytes.NewReader(rnd), Store: tt.store})
			info := &reqinfo.Info{ID: "r1", Principal: tt.principal}
			req := httptest.NewRequest(tt.method, "/.rampart/ws/ticket", nil)
			req = req.WithContext(reqinfo.With(req.Context(), info))
			rec := httptest.NewRecorder()
			tk.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if info.Outcome != tt.outcome {
				t.Errorf("outcome %q, want %q", info.Outcome, tt.outcome)
			}
			if tt.status != http.StatusOK {
				return
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body["ticket"] != want.Text() || body["expires_in"] != float64(30) || len(body) != 2 {
				t.Errorf("body %v, want ticket %s and expires_in 30", body, want.Text())
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
		})
	}
	t.Run("no request info", func(t *testing.T) {
		rec := httptest.NewRecorder()
		newTickets(t, wsgate.TicketsOptions{}).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", rec.Code)
		}
	})
}
