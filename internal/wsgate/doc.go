// Package wsgate governs WebSocket connections for their whole life: a
// client exchanges its API key (over authenticated REST) for a short-lived,
// single-use ticket, opens the socket with ?ticket= only, and the gate
// terminates the WebSocket on both sides and relays messages to the
// upstream while enforcing per-principal and global connection caps, an
// idle timeout, ping/pong liveness, a maximum message size, an optional
// per-connection message rate, and closing the principal's sockets when its
// key is revoked or its session ends.
//
// # Pieces
//
//   - [Tickets] issues and redeems tickets; [Tickets.Handler] is the
//     POST endpoint. Tickets live in a [TicketStore]: [MemoryTickets] here,
//     a Redis one (atomic GETDEL) in package wsredis.
//   - [Gate] relays WebSocket routes; [Gate.Handler] returns the handler for
//     one route. Connection counts live in a [Registry]: [MemoryRegistry]
//     here, a Redis one with per-instance heartbeats in package wsredis.
//   - [Revocations] fans [Gate.CloseKey] and [Gate.CloseSession] out to
//     every instance (Redis pub/sub in package wsredis).
//
// # Close codes
//
// Refusals before the upgrade are HTTP statuses with a generic JSON body
// (reqinfo.Reject). After the upgrade: 1008 for policy (connection cap,
// revoked key or ended session, message rate), 1009 for a message over the
// limit, 1001 for idle timeout and shutdown, 1014 when the upstream fails,
// and the peer's own code passed through when either side closes.
//
// Tickets, keys and query strings are never logged.
package wsgate
