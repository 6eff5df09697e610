package wsgate_test

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/rampart-security/rampart/internal/wsgate"
)

// Example wires the ticket endpoint and one WebSocket route as rampart
// serve does: the ticket endpoint behind API-key authentication, the route
// behind request info only (the ticket is its credential), and CloseKey
// called whenever a key is revoked.
func Example() {
	tickets, err := wsgate.NewTickets(wsgate.TicketsOptions{}) // memory; wsredis.NewTickets for several instances
	if err != nil {
		slog.Error("tickets", "error", err)
		return
	}
	gate, err := wsgate.New(wsgate.Options{
		Tickets:     tickets,
		CheckOrigin: func(origin string) bool { return origin == "https://app.example.com" }, // the CORS allowlist
		OnClose: func(ev wsgate.Event) {
			slog.Info("websocket closed", "route", ev.Route, "key_id", ev.Principal.ID, "code", ev.Code, "reason", ev.Reason, "duration", ev.Duration)
		},
	})
	if err != nil {
		slog.Error("gate", "error", err)
		return
	}
	ws, err := gate.Handler(wsgate.RouteOptions{Name: "positions", Upstream: "http://127.0.0.1:8000"})
	if err != nil {
		slog.Error("route", "error", err)
		return
	}
	authenticated := func(h http.Handler) http.Handler { return h } // auth.Middleware in rampart
	mux := http.NewServeMux()
	mux.Handle("POST /.rampart/ws/ticket", authenticated(tickets.Handler()))
	mux.Handle("GET /ws", ws)

	revoke := func(keyID string) { gate.CloseKey(keyID) } // from the key manager's OnChange
	_ = revoke

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = gate.Shutdown(ctx) // on graceful shutdown: every socket gets 1001
}
