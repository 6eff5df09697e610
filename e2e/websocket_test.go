package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// runWithGatewayEnv runs the rampart binary with the environment g was
// started with (state dir, secret files), as an operator on that host.
func runWithGatewayEnv(t *testing.T, g *gateway, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = g.cmd.Env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("rampart %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// wsUpstream is a real WebSocket server behind the gateway: it echoes every
// message, closes with the code asked for by a text message "close CODE
// REASON", and reports how each of its connections ended. Plain HTTP
// requests get a small JSON answer.
type wsUpstream struct {
	*httptest.Server
	ends chan wsEnd

	mu   sync.Mutex
	seen []wsSeen
}

// wsEnd is how one upstream-side connection ended; id is its "id" query
// parameter.
type wsEnd struct {
	id     string
	code   websocket.StatusCode
	reason string
}

// wsSeen is what the upstream saw in one handshake.
type wsSeen struct {
	rawQuery, keyID, subprotocol string
}

func startWSUpstream(t *testing.T) *wsUpstream {
	t.Helper()
	u := &wsUpstream{ends: make(chan wsEnd, 4096)}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *wsUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"v1.test"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	id := r.URL.Query().Get("id")
	u.mu.Lock()
	u.seen = append(u.seen, wsSeen{r.URL.RawQuery, r.Header.Get("X-Rampart-Key-ID"), c.Subprotocol()})
	u.mu.Unlock()
	c.SetReadLimit(1 << 20)
	ctx := context.Background()
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			errors.As(err, &ce)
			u.report(wsEnd{id, websocket.CloseStatus(err), ce.Reason})
			return
		}
		if typ == websocket.MessageText && bytes.HasPrefix(b, []byte("close ")) {
			f := strings.SplitN(string(b), " ", 3)
			code, _ := strconv.Atoi(f[1])
			_ = c.Close(websocket.StatusCode(code), f[2])
			u.report(wsEnd{id, websocket.StatusCode(code), "sent " + f[2]})
			return
		}
		if err := c.Write(ctx, typ, b); err != nil {
			u.report(wsEnd{id, websocket.CloseStatus(err), "write: " + err.Error()})
			return
		}
	}
}

func (u *wsUpstream) report(e wsEnd) {
	select {
	case u.ends <- e:
	default:
	}
}

func (u *wsUpstream) handshakes() []wsSeen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]wsSeen(nil), u.seen...)
}

// waitEnd waits (bounded) for the upstream connection with id to end.
func (u *wsUpstream) waitEnd(t *testing.T, id string) wsEnd {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-u.ends:
			if e.id == id {
				return e
			}
		case <-deadline:
			t.Fatalf("upstream connection %q did not end", id)
		}
	}
}

const wsRouteConfig = `  - name: ws
    path: /ws
    websocket: true
    auth: api_key
    permission: read
`

// wsGateway starts a gateway whose upstream is up, with the /ws route and
// the given extra config (top-level sections).
func wsGateway(t *testing.T, up *wsUpstream, extra string) (*gateway, *x509.Certificate) {
	t.Helper()
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 1)
	return startGateway(t, baseConfig(up.URL, certFile, keyFile, wsRouteConfig+extra)), cert
}

// wsClients are the HTTPS client (tickets) and the HTTP/1.1 client
// (WebSocket handshakes) that trust the test certificate.
type wsClients struct {
	https, ws *http.Client
}

func newWSClients(cert *x509.Certificate) wsClients {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return wsClients{
		https: client(cert, nil),
		ws:    &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	}
}

// ticket asks g for a WebSocket ticket with apiKey.
func (c wsClients) ticket(t *testing.T, g *gateway, apiKey string) string {
	t.Helper()
	resp, body := do(t, c.https, "POST", "https://"+g.public+"/.rampart/ws/ticket", nil, map[string]string{"X-API-Key": apiKey})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ticket: %d %s", resp.StatusCode, body)
	}
	var v struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Ticket == "" || v.ExpiresIn <= 0 {
		t.Fatalf("ticket body %q: %v", body, err)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("ticket Cache-Control = %q, want no-store", cc)
	}
	return v.Ticket
}

// dial opens /ws on g with query; the caller closes the connection.
func (c wsClients) dial(g *gateway, query string, hdr http.Header, protocols ...string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return websocket.Dial(ctx, "wss://"+g.public+"/ws?"+query, &websocket.DialOptions{
		HTTPClient: c.ws, HTTPHeader: hdr, Subprotocols: protocols,
	})
}

// open dials with a fresh ticket for apiKey and fails the test unless the
// upgrade succeeds. The connection is closed when the test ends.
func (c wsClients) open(t *testing.T, issuer, target *gateway, apiKey, id string) *websocket.Conn {
	t.Helper()
	conn, resp, err := c.dial(target, "id="+url.QueryEscape(id)+"&ticket="+url.QueryEscape(c.ticket(t, issuer, apiKey)), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: status %d: %v", id, status, err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// wsRefused asserts that a handshake with query is refused before the
// upgrade with status.
func (c wsClients) wsRefused(t *testing.T, g *gateway, name, query string, hdr http.Header, status int) {
	t.Helper()
	conn, resp, err := c.dial(g, query, hdr)
	if err == nil {
		conn.CloseNow()
		t.Fatalf("%s: upgrade succeeded, want %d", name, status)
	}
	if resp == nil || resp.StatusCode != status {
		got := 0
		if resp != nil {
			got = resp.StatusCode
		}
		t.Fatalf("%s: status %d (%v), want %d", name, got, err, status)
	}
}

// readClose reads until conn ends and returns the close code and reason.
func readClose(t *testing.T, conn *websocket.Conn, within time.Duration) (websocket.StatusCode, string) {
	t.Helper()
	code, reason := readCloseNoFatal(conn, within)
	if code == -1 {
		t.Fatalf("read: %s (no close frame)", reason)
	}
	return code, reason
}

// wantClosed asserts that a freshly admitted connection is closed with code
// and a reason containing reason (caps refuse after the upgrade).
func wantClosed(t *testing.T, conn *websocket.Conn, code websocket.StatusCode, reason string) {
	t.Helper()
	got, why := readClose(t, conn, 10*time.Second)
	if got != code || !strings.Contains(why, reason) {
		t.Fatalf("closed with %d %q, want %d %q", got, why, code, reason)
	}
}

func echo(t *testing.T, conn *websocket.Conn, typ websocket.MessageType, msg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Write(ctx, typ, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	gotTyp, got, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if gotTyp != typ || !bytes.Equal(got, msg) {
		t.Fatalf("echo = %v %q, want %v %q", gotTyp, got, typ, msg)
	}
}

// TestWebSocketTickets: only a fresh, well-formed ticket opens /ws; an API
// key in the query is refused even beside a valid ticket; a valid ticket
// relays text and binary both ways, passes the subprotocol and both sides'
// close codes through, and the upstream never sees the ticket.
func TestWebSocketTickets(t *testing.T) {
	up := startWSUpstream(t)
	g, cert := wsGateway(t, up, "")
	c := newWSClients(cert)
	key, keyID := createKey(t, g, "ws-client", "read")

	c.wsRefused(t, g, "no ticket", "id=x", nil, http.StatusUnauthorized)
	c.wsRefused(t, g, "empty ticket", "ticket=", nil, http.StatusUnauthorized)
	c.wsRefused(t, g, "malformed ticket", "ticket=rwt_notaticket", nil, http.StatusUnauthorized)
	c.wsRefused(t, g, "api key as ticket", "ticket="+url.QueryEscape(key), nil, http.StatusUnauthorized)
	c.wsRefused(t, g, "api key in query", "api_key="+url.QueryEscape(key), nil, http.StatusUnauthorized)
	valid := c.ticket(t, g, key)
	c.wsRefused(t, g, "api key beside a valid ticket", "ticket="+url.QueryEscape(valid)+"&api_key="+url.QueryEscape(key), nil, http.StatusUnauthorized)
	c.wsRefused(t, g, "foreign origin", "ticket="+url.QueryEscape(c.ticket(t, g, key)),
		http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden)
	resp, _ := do(t, c.https, "POST", "https://"+g.public+"/.rampart/ws/ticket", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("ticket without a key: %d, want 401", resp.StatusCode)
	}
	if strings.Contains(g.logs.String(), key) {
		t.Fatal("the API key from the query string was logged")
	}

	tk := c.ticket(t, g, key)
	conn, resp, err := c.dial(g, "id=relay&ticket="+url.QueryEscape(tk), http.Header{"Origin": {"https://app.example.com"}}, "v1.test")
	if err != nil {
		t.Fatalf("valid ticket: %v (%v)", err, resp)
	}
	defer conn.CloseNow()
	if conn.Subprotocol() != "v1.test" {
		t.Errorf("subprotocol = %q, want v1.test", conn.Subprotocol())
	}
	echo(t, conn, websocket.MessageText, []byte("hello through rampart"))
	echo(t, conn, websocket.MessageBinary, []byte{0, 1, 2, 0xff, 0xfe})
	c.wsRefused(t, g, "replayed ticket", "ticket="+url.QueryEscape(tk), nil, http.StatusUnauthorized)

	hs := up.handshakes()
	if len(hs) != 1 {
		t.Fatalf("upstream saw %d handshakes, want 1 (refusals must not reach it)", len(hs))
	}
	if hs[0].rawQuery != "id=relay" || hs[0].keyID != keyID || hs[0].subprotocol != "v1.test" {
		t.Errorf("upstream saw %+v, want query id=relay, key %s, subprotocol v1.test", hs[0], keyID)
	}

	// The upstream's close code and reason come back to the client.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, []byte("close 4001 upstream says bye")); err != nil {
		t.Fatal(err)
	}
	if code, reason := readClose(t, conn, 10*time.Second); code != 4001 || reason != "upstream says bye" {
		t.Fatalf("client got close %d %q, want 4001 %q", code, reason, "upstream says bye")
	}
	up.waitEnd(t, "relay")

	// And the client's close code reaches the upstream.
	conn2 := c.open(t, g, g, key, "client-close")
	echo(t, conn2, websocket.MessageText, []byte("x"))
	if err := conn2.Close(4002, "client says bye"); err != nil {
		t.Fatal(err)
	}
	if e := up.waitEnd(t, "client-close"); e.code != 4002 || e.reason != "client says bye" {
		t.Fatalf("upstream got close %d %q, want 4002 %q", e.code, e.reason, "client says bye")
	}
}

// TestWebSocketTicketExpiry: with websocket.ticket_ttl 1s, a ticket that is
// accepted when fresh is refused once it has expired. Tickets are issued
// together and tried one by one until one is refused (a bounded poll), so
// the test does not depend on how long the machine takes.
func TestWebSocketTicketExpiry(t *testing.T) {
	up := startWSUpstream(t)
	g, cert := wsGateway(t, up, "websocket:\n  ticket_ttl: 1s\n")
	c := newWSClients(cert)
	key, _ := createKey(t, g, "ws-expiry", "read")

	tickets := make([]string, 40)
	for i := range tickets {
		tickets[i] = c.ticket(t, g, key)
	}
	// The first ticket is fresh: it works.
	conn, _, err := c.dial(g, "ticket="+url.QueryEscape(tickets[0]), nil)
	if err != nil {
		t.Fatalf("fresh ticket refused: %v", err)
	}
	conn.CloseNow()
	for _, tk := range tickets[1:] {
		conn, resp, err := c.dial(g, "ticket="+url.QueryEscape(tk), nil)
		if err == nil {
			conn.CloseNow()
			time.Sleep(200 * time.Millisecond) // poll interval, not a correctness wait
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("expired ticket: %v, want 401", err)
		}
		return
	}
	t.Fatal("no ticket expired within the poll bound (ticket_ttl 1s)")
}

// TestWebSocketCaps: with the default max_per_principal (10) the 11th
// connection of one key is closed with 1008; with max_total 15 the
// connection over the total is closed with 1008; closing a connection frees
// its slot. Refused connections never reach the upstream.
func TestWebSocketCaps(t *testing.T) {
	up := startWSUpstream(t)
	g, cert := wsGateway(t, up, "websocket:\n  max_total: 15\n")
	c := newWSClients(cert)
	keyA, _ := createKey(t, g, "ws-a", "read")
	keyB, _ := createKey(t, g, "ws-b", "read")

	var a []*websocket.Conn
	for i := range 10 {
		a = append(a, c.open(t, g, g, keyA, "a"+strconv.Itoa(i)))
	}
	for i, conn := range a { // every admitted connection relays
		echo(t, conn, websocket.MessageText, []byte("a"+strconv.Itoa(i)))
	}
	wantClosed(t, c.open(t, g, g, keyA, "a-over"), websocket.StatusPolicyViolation, "connection limit exceeded")

	for i := range 5 {
		echo(t, c.open(t, g, g, keyB, "b"+strconv.Itoa(i)), websocket.MessageText, []byte("b"))
	}
	wantClosed(t, c.open(t, g, g, keyB, "b-over"), websocket.StatusPolicyViolation, "server connection limit reached")

	// Freeing one of A's slots admits B again.
	if err := a[0].Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	up.waitEnd(t, "a0")
	echo(t, openWhenAdmitted(t, c, g, g, keyB, "b-after"), websocket.MessageText, []byte("b"))

	for _, h := range up.handshakes() {
		if strings.Contains(h.rawQuery, "over") {
			t.Fatalf("a refused connection reached the upstream: %+v", h)
		}
	}
}

// openWhenAdmitted opens a connection, retrying (bounded) while a cap still
// counts a connection that is being released; it proves the slot frees.
func openWhenAdmitted(t *testing.T, c wsClients, issuer, target *gateway, key, id string) *websocket.Conn {
	t.Helper()
	return pollAdmitted(t, c, issuer, target, key, id, 50, 100*time.Millisecond)
}

// pollAdmitted tries up to tries times, every interval, to open an admitted
// connection.
func pollAdmitted(t *testing.T, c wsClients, issuer, target *gateway, key, id string, tries int, every time.Duration) *websocket.Conn {
	t.Helper()
	for range tries {
		conn := c.open(t, issuer, target, key, id)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := conn.Write(ctx, websocket.MessageText, []byte("probe"))
		if err == nil {
			_, _, err = conn.Read(ctx)
		}
		cancel()
		if err == nil {
			return conn
		}
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("open %s: %v", id, err)
		}
		time.Sleep(every) // poll interval
	}
	t.Fatalf("%s: the freed slot was never admitted", id)
	return nil
}

// TestWebSocketMessageAndIdleLimits: a 65 KiB message closes the socket
// with 1009 (default max 64 KiB, a 64 KiB one passes); with idle_timeout 1s
// a connection that sends nothing is closed with 1001.
func TestWebSocketMessageAndIdleLimits(t *testing.T) {
	up := startWSUpstream(t)
	g, cert := wsGateway(t, up, "websocket:\n  idle_timeout: 1s\n  ping_interval: 250ms\n")
	c := newWSClients(cert)
	key, _ := createKey(t, g, "ws-limits", "read")

	big := c.open(t, g, g, key, "big")
	big.SetReadLimit(1 << 20)
	echo(t, big, websocket.MessageBinary, bytes.Repeat([]byte{'x'}, 64<<10))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := big.Write(ctx, websocket.MessageBinary, bytes.Repeat([]byte{'x'}, 65<<10)); err != nil {
		t.Fatal(err)
	}
	if code, _ := readClose(t, big, 10*time.Second); code != websocket.StatusMessageTooBig {
		t.Fatalf("65 KiB message: close %d, want 1009", code)
	}
	if e := up.waitEnd(t, "big"); e.code != websocket.StatusGoingAway {
		t.Errorf("upstream got %d after the client's oversized message, want 1001", e.code)
	}

	idle := c.open(t, g, g, key, "idle")
	echo(t, idle, websocket.MessageText, []byte("then silence"))
	code, reason := readClose(t, idle, 20*time.Second) // reading answers pings: only idleness ends it
	if code != websocket.StatusGoingAway || !strings.Contains(reason, "idle") {
		t.Fatalf("idle connection: close %d %q, want 1001 idle timeout", code, reason)
	}
	if e := up.waitEnd(t, "idle"); e.code != websocket.StatusGoingAway {
		t.Errorf("upstream got %d for the idle connection, want 1001", e.code)
	}
}

// TestWebSocketPingTimeout: a client that stops answering pings (it never
// reads, so its pongs are never sent) is dropped and the upstream is told
// with 1001, long before the idle timeout. With websocket.message_rate a
// client sending faster is closed with 1008.
func TestWebSocketPingTimeout(t *testing.T) {
	up := startWSUpstream(t)
	g, cert := wsGateway(t, up, "websocket:\n  idle_timeout: 10m\n  ping_interval: 250ms\n  message_rate: 5/s\n")
	c := newWSClients(cert)
	key, _ := createKey(t, g, "ws-ping", "read")

	fast := c.open(t, g, g, key, "fast")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 50 {
		if err := fast.Write(ctx, websocket.MessageText, []byte(strconv.Itoa(i))); err != nil {
			break // already closed
		}
	}
	wantClosed(t, fast, websocket.StatusPolicyViolation, "message rate exceeded")

	silent := c.open(t, g, g, key, "silent")
	_ = silent // never read: pings go unanswered
	e := up.waitEnd(t, "silent")
	if e.code != websocket.StatusGoingAway || !strings.Contains(e.reason, "not responding") {
		t.Fatalf("upstream got close %d %q, want 1001 client not responding", e.code, e.reason)
	}
}

// testRedisURL returns RAMPART_TEST_REDIS_URL with its database set to db,
// so these tests' global counts are not shared with other users of the
// server; it skips (or fails with RAMPART_TEST_REQUIRE_SERVICES=1) without.
func testRedisURL(t *testing.T, db int) string {
	t.Helper()
	raw := os.Getenv("RAMPART_TEST_REDIS_URL")
	if raw == "" {
		if os.Getenv("RAMPART_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("RAMPART_TEST_REDIS_URL is not set and RAMPART_TEST_REQUIRE_SERVICES=1")
		}
		t.Skip("RAMPART_TEST_REDIS_URL is not set")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("RAMPART_TEST_REDIS_URL: %v", err)
	}
	u.Path = "/" + strconv.Itoa(db)
	return u.String()
}

// TestWebSocketTwoInstancesRedis: two gateways sharing Redis behave as one.
// A ticket issued on A works once on B (and never again on either); the
// per-key cap (3) and the total cap (5) count connections on both; revoking
// the key on A's admin API closes its sockets on A and B with 1008 within
// one second, and their slots are freed. One ticket presented on both
// instances at once opens exactly one socket.
func TestWebSocketTwoInstancesRedis(t *testing.T) {
	redisURL := testRedisURL(t, 13)
	up := startWSUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 1)
	extra := wsRouteConfig + fmt.Sprintf("redis:\n  url: %s\nwebsocket:\n  max_per_principal: 3\n  max_total: 5\n", redisURL)
	a := startGateway(t, baseConfig(up.URL, certFile, keyFile, extra))
	b := startGateway(t, baseConfig(up.URL, certFile, keyFile, extra))
	c := newWSClients(cert)
	// Keys live in A's store; B needs none: the ticket carries the grant.
	key1, key1ID := createKey(t, a, "ws-one", "read")
	key2, _ := createKey(t, a, "ws-two", "read")
	adminKey, _ := createKey(t, a, "ws-admin", "admin")

	// A ticket from A works once on B, then nowhere.
	tk := c.ticket(t, a, key1)
	onB, _, err := c.dial(b, "id=k1-b0&ticket="+url.QueryEscape(tk), nil)
	if err != nil {
		t.Fatalf("ticket from A refused on B: %v", err)
	}
	t.Cleanup(func() { onB.CloseNow() })
	echo(t, onB, websocket.MessageText, []byte("cross-instance"))
	c.wsRefused(t, b, "replay on B", "ticket="+url.QueryEscape(tk), nil, http.StatusUnauthorized)
	c.wsRefused(t, a, "replay on A", "ticket="+url.QueryEscape(tk), nil, http.StatusUnauthorized)

	// Per-key cap across instances: one on B, two on A, the 4th refused on either.
	k1 := []*websocket.Conn{onB, c.open(t, a, a, key1, "k1-a0"), c.open(t, a, a, key1, "k1-a1")}
	for _, conn := range k1 {
		echo(t, conn, websocket.MessageText, []byte("k1"))
	}
	wantClosed(t, c.open(t, a, b, key1, "k1-over-b"), websocket.StatusPolicyViolation, "connection limit exceeded")
	wantClosed(t, c.open(t, a, a, key1, "k1-over-a"), websocket.StatusPolicyViolation, "connection limit exceeded")

	// Total cap across instances: 3 + 2 = 5; the 6th is refused.
	k2 := []*websocket.Conn{c.open(t, a, b, key2, "k2-b0"), c.open(t, a, a, key2, "k2-a0")}
	for _, conn := range k2 {
		echo(t, conn, websocket.MessageText, []byte("k2"))
	}
	wantClosed(t, c.open(t, a, b, key2, "k2-over-b"), websocket.StatusPolicyViolation, "server connection limit reached")

	// Revoke key 1 on A: its sockets on both instances close within 1 s.
	type closed struct {
		code websocket.StatusCode
		err  error
	}
	results := make(chan closed, len(k1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, conn := range k1 {
		go func() {
			for {
				_, _, err := conn.Read(ctx)
				if err != nil {
					results <- closed{websocket.CloseStatus(err), err}
					return
				}
			}
		}()
	}
	pending := c.ticket(t, a, key1) // issued before the revocation, used on B after it
	resp, body := do(t, &http.Client{Timeout: 10 * time.Second}, "POST", "http://"+a.admin+"/v1/keys/"+key1ID+"/revoke", nil,
		map[string]string{"X-API-Key": adminKey})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	budget := time.After(time.Second) // the acceptance bound: closed within 1 s of the revocation
	for range k1 {
		select {
		case r := <-results:
			if r.code != websocket.StatusPolicyViolation {
				t.Fatalf("revoked socket ended with %v, want close 1008", r.err)
			}
		case <-budget:
			t.Fatal("a revoked key's socket was still open 1 s after the revocation")
		}
	}
	c.wsRefused(t, b, "pre-revocation ticket on B", "ticket="+url.QueryEscape(pending), nil, http.StatusUnauthorized)
	// The revoked key can get no new ticket; its slots are free for key 2.
	resp, _ = do(t, c.https, "POST", "https://"+a.public+"/.rampart/ws/ticket", nil, map[string]string{"X-API-Key": key1})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("ticket for a revoked key: %d, want 401", resp.StatusCode)
	}
	echo(t, openWhenAdmitted(t, c, a, b, key2, "k2-after"), websocket.MessageText, []byte("freed"))

	// One ticket presented on A and B at once: exactly one wins.
	key3, _ := createKey(t, a, "ws-three", "read")
	for round := range 2 {
		tk := c.ticket(t, a, key3)
		type try struct {
			conn   *websocket.Conn
			status int
			err    error
		}
		tries := make(chan try, 2)
		for _, g := range []*gateway{a, b} {
			go func() {
				conn, resp, err := c.dial(g, "id=race&ticket="+url.QueryEscape(tk), nil)
				r := try{conn: conn, err: err}
				if resp != nil {
					r.status = resp.StatusCode
				}
				tries <- r
			}()
		}
		var won []*websocket.Conn
		for range 2 {
			r := <-tries
			switch {
			case r.err == nil:
				won = append(won, r.conn)
			case r.status != http.StatusUnauthorized:
				t.Fatalf("round %d: loser got %d (%v), want 401", round, r.status, r.err)
			}
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d of 2 concurrent uses of one ticket won, want exactly 1", round, len(won))
		}
		echo(t, won[0], websocket.MessageText, []byte("race"))
		won[0].Close(websocket.StatusNormalClosure, "")
		up.waitEnd(t, "race")
	}
}

// TestWebSocketRevokeAndShutdown: on one instance without Redis, revoking a
// key on the admin API closes its socket with 1008 (counted in /metrics by
// reason) and a graceful shutdown closes the others with 1001; both are
// audit events (ws.opened, ws.closed
// with the reason, key.revoked), exported with `rampart audit export -c`.
func TestWebSocketRevokeAndShutdown(t *testing.T) {
	up := startWSUpstream(t)
	g, cert := wsGateway(t, up, "")
	c := newWSClients(cert)
	revoked, revokedID := createKey(t, g, "ws-revoked", "read")
	kept, keptID := createKey(t, g, "ws-kept", "read")
	adminKey, _ := createKey(t, g, "ws-admin", "admin")

	r := c.open(t, g, g, revoked, "revoked")
	k := c.open(t, g, g, kept, "kept")
	echo(t, r, websocket.MessageText, []byte("r"))
	echo(t, k, websocket.MessageText, []byte("k"))
	pending := c.ticket(t, g, revoked) // issued before the revocation, used after
	resp, body := do(t, &http.Client{Timeout: 10 * time.Second}, "POST", "http://"+g.admin+"/v1/keys/"+revokedID+"/revoke", nil,
		map[string]string{"X-API-Key": adminKey})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	wantClosed(t, r, websocket.StatusPolicyViolation, "revoked")
	echo(t, k, websocket.MessageText, []byte("still open"))
	c.wsRefused(t, g, "ticket of a revoked key", "id=after-revoke&ticket="+url.QueryEscape(pending), nil, http.StatusUnauthorized)
	// The admin listener's metrics count the open socket and the revocation
	// (the close is counted once both relay sides have ended: poll, bounded).
	wantMetrics := []string{"rampart_websocket_connections 1", "rampart_websocket_disconnects_total{reason=\"revoked\"} 1"}
	var metrics string
	for range 50 {
		_, metrics = get(t, &http.Client{Timeout: 10 * time.Second}, "http://"+g.admin+"/metrics", nil)
		if hasLine(metrics, wantMetrics[0]) && hasLine(metrics, wantMetrics[1]) {
			break
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	for _, want := range wantMetrics {
		if !hasLine(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, grepLines(metrics, "rampart_websocket"))
		}
	}

	done := make(chan struct{})
	var code websocket.StatusCode
	var reason string
	go func() {
		defer close(done)
		code, reason = readCloseNoFatal(k, 30*time.Second)
	}()
	signalAndWait(t, g, syscall.SIGTERM)
	<-done
	if code != websocket.StatusGoingAway || !strings.Contains(reason, "shutting down") {
		t.Fatalf("at shutdown: close %d %q, want 1001 server shutting down", code, reason)
	}

	evs := auditExport(t, g)
	opened := map[string]bool{}
	closed := map[string]string{}
	var keyRevoked bool
	for _, e := range evs {
		switch e.Type {
		case "ws.opened":
			opened[e.User] = true
		case "ws.closed":
			closed[e.User], _ = e.Details["reason"].(string)
		case "key.revoked":
			keyRevoked = keyRevoked || e.Details["key_id"] == revokedID
		}
	}
	if !opened[revokedID] || !opened[keptID] || closed[revokedID] != "revoked" || closed[keptID] != "shutdown" || !keyRevoked {
		t.Fatalf("audit: opened %v, closed %v, key.revoked %v", opened, closed, keyRevoked)
	}
}

// readCloseNoFatal is readClose for a goroutine: it returns -1 and the
// error text when the connection ends without a close frame.
func readCloseNoFatal(conn *websocket.Conn, within time.Duration) (websocket.StatusCode, string) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		return -1, err.Error()
	}
}

// hasLine reports whether s has a line equal to line.
func hasLine(s, line string) bool {
	for _, l := range strings.Split(s, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestWebSocketCrashedInstanceReleased: connections held by an instance
// that is killed (SIGKILL, no clean release) stop counting toward the
// shared per-key cap once its registry heartbeat expires, so the surviving
// instance admits the key again.
func TestWebSocketCrashedInstanceReleased(t *testing.T) {
	redisURL := testRedisURL(t, 13)
	up := startWSUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 1)
	extra := wsRouteConfig + fmt.Sprintf("redis:\n  url: %s\nwebsocket:\n  max_per_principal: 2\n", redisURL)
	a := startGateway(t, baseConfig(up.URL, certFile, keyFile, extra))
	b := startGateway(t, baseConfig(up.URL, certFile, keyFile, extra))
	c := newWSClients(cert)
	key, _ := createKey(t, a, "ws-crash", "read")

	for i := range 2 {
		echo(t, c.open(t, a, b, key, "on-b"+strconv.Itoa(i)), websocket.MessageText, []byte("b"))
	}
	wantClosed(t, c.open(t, a, a, key, "over-a"), websocket.StatusPolicyViolation, "connection limit exceeded")
	signalAndWait(t, b, syscall.SIGKILL)
	// The heartbeat TTL is 15 s: poll for up to a minute.
	echo(t, pollAdmitted(t, c, a, a, key, "after-crash", 120, 500*time.Millisecond), websocket.MessageText, []byte("a"))
}

// TestWebSocketTicketBoundToOrigin: with websocket.bind_origin a ticket
// works only with the Origin it was requested from (and is used up by a
// wrong one).
func TestWebSocketTicketBoundToOrigin(t *testing.T) {
	up := startWSUpstream(t)
	g, cert := wsGateway(t, up, "websocket:\n  bind_origin: true\n")
	c := newWSClients(cert)
	key, _ := createKey(t, g, "ws-origin", "read")
	app := http.Header{"Origin": {"https://app.example.com"}}
	ticket := func() string {
		resp, body := do(t, c.https, "POST", "https://"+g.public+"/.rampart/ws/ticket", nil,
			map[string]string{"X-API-Key": key, "Origin": app.Get("Origin")})
		var v struct{ Ticket string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil {
			t.Fatalf("ticket: %d %s", resp.StatusCode, body)
		}
		return v.Ticket
	}
	tk := ticket()
	c.wsRefused(t, g, "no Origin", "ticket="+url.QueryEscape(tk), nil, http.StatusUnauthorized)
	c.wsRefused(t, g, "right Origin after a wrong try", "ticket="+url.QueryEscape(tk), app, http.StatusUnauthorized)
	conn, _, err := c.dial(g, "ticket="+url.QueryEscape(ticket()), app)
	if err != nil {
		t.Fatalf("bound ticket with its Origin: %v", err)
	}
	defer conn.CloseNow()
	echo(t, conn, websocket.MessageText, []byte("bound"))
}

// TestWebSocketRevokedFromCLI: `rampart keys revoke -c` on an operator's
// machine reaches running gateways through Redis: the key's socket closes
// with 1008 and the key is refused at once, as with the admin API.
func TestWebSocketRevokedFromCLI(t *testing.T) {
	redisURL := testRedisURL(t, 12)
	up := startWSUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 1)
	extra := wsRouteConfig + fmt.Sprintf("redis:\n  url: %s\n", redisURL)
	g := startGateway(t, baseConfig(up.URL, certFile, keyFile, extra))
	c := newWSClients(cert)
	key, keyID := createKey(t, g, "ws-cli", "read")
	conn := c.open(t, g, g, key, "cli-0")
	echo(t, conn, websocket.MessageText, []byte("before"))

	g.keys(t, "revoke", keyID)
	if code, why := readClose(t, conn, 10*time.Second); code != websocket.StatusPolicyViolation {
		t.Fatalf("socket after CLI revocation: %d %q, want 1008", code, why)
	}
	// Within auth.cache_ttl at most; at once with Redis.
	resp, _ := do(t, c.https, "POST", "https://"+g.public+"/.rampart/ws/ticket", nil, map[string]string{"X-API-Key": key})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoked key asking for a ticket: %d, want 401", resp.StatusCode)
	}
}
