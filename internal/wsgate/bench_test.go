package wsgate_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/rampart-security/rampart/internal/wsgate"
	"github.com/rampart-security/rampart/internal/wsgate/wsgatetest"
)

// benchConns is how many idle connections the memory benchmark opens:
// RAMPART_BENCH_WS_CONNS, default 2000. Client, gate and upstream share
// this process, so each relayed pair costs four descriptors.
func benchConns(b *testing.B) int {
	if s := os.Getenv("RAMPART_BENCH_WS_CONNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("RAMPART_BENCH_WS_CONNS=%q", s)
		}
		return n
	}
	return 2000
}

func newBenchGate(b *testing.B, up *wsgatetest.Upstream) *wsgatetest.Server {
	b.Helper()
	tk, err := wsgate.NewTickets(wsgate.TicketsOptions{Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	g, err := wsgate.New(wsgate.Options{Tickets: tk, MaxPerPrincipal: -1, MaxTotal: -1, Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	return wsgatetest.NewServer(b, g, tk, wsgate.RouteOptions{Name: "ws", Upstream: up.URL})
}

func inUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// openIdle opens n connections with dial, each used once (so every buffer
// the relay keeps is allocated), and returns them.
func openIdle(b *testing.B, n int, dial func() (*websocket.Conn, error)) []*websocket.Conn {
	b.Helper()
	conns := make([]*websocket.Conn, 0, n)
	ctx := context.Background()
	for range n {
		c, err := dial()
		if err != nil {
			b.Fatalf("connection %d: %v", len(conns)+1, err)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.Read(ctx); err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	return conns
}

func closeAll(conns []*websocket.Conn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { _ = c.Close(websocket.StatusNormalClosure, "") })
	}
	wg.Wait()
}

// BenchmarkIdleRelayMemory measures the memory (heap in use plus goroutine
// stacks) that idle relayed connections cost. It opens the connections
// directly to the upstream, then through the gate, and reports per
// connection both totals and their difference: what the gate adds per
// client–upstream pair (B/relayed-pair).
//
//	go test -run '^$' -bench IdleRelayMemory -benchtime 1x ./internal/wsgate/
func BenchmarkIdleRelayMemory(b *testing.B) {
	n := benchConns(b)
	up := wsgatetest.NewUpstream(b)
	drain(up)
	srv := newBenchGate(b, up)
	wsURL := "ws" + strings.TrimPrefix(up.URL, "http")
	ctx := context.Background()
	for range b.N {
		base := inUse()
		direct := openIdle(b, n, func() (*websocket.Conn, error) {
			c, _, err := websocket.Dial(ctx, wsURL+"/ws", nil)
			return c, err
		})
		directBytes := float64(inUse()-base) / float64(n)
		closeAll(direct)

		base = inUse()
		relayed := openIdle(b, n, func() (*websocket.Conn, error) {
			tk := srv.Ticket(b, "k_bench")
			c, _, err := srv.Dial(ctx, "/ws?ticket="+tk, nil)
			return c, err
		})
		relayedBytes := float64(inUse()-base) / float64(n)
		if got := srv.Gate.Len(); got != n {
			b.Fatalf("gate relays %d connections, want %d", got, n)
		}
		closeAll(relayed)

		b.ReportMetric(directBytes, "B/direct-conn")
		b.ReportMetric(relayedBytes, "B/relayed-conn")
		b.ReportMetric(relayedBytes-directBytes, "B/relayed-pair")
		b.ReportMetric(float64(n), "conns")
	}
}

// drain empties the upstream's notification channels in the background so
// thousands of connections do not fill them.
func drain(up *wsgatetest.Upstream) {
	go func() {
		for range up.Opened {
		}
	}()
	go func() {
		for range up.Ended {
		}
	}()
	go func() {
		for range up.Pinged {
		}
	}()
}

// benchDials returns the direct and relayed dialers of the benchmarks.
func benchDials(b *testing.B) []struct {
	name string
	dial func() (*websocket.Conn, error)
} {
	up := wsgatetest.NewUpstream(b)
	drain(up)
	srv := newBenchGate(b, up)
	wsURL := "ws" + strings.TrimPrefix(up.URL, "http")
	ctx := context.Background()
	return []struct {
		name string
		dial func() (*websocket.Conn, error)
	}{
		{"direct", func() (*websocket.Conn, error) {
			c, _, err := websocket.Dial(ctx, wsURL+"/ws", nil)
			return c, err
		}},
		{"relayed", func() (*websocket.Conn, error) {
			c, _, err := srv.Dial(ctx, "/ws?ticket="+srv.Ticket(b, "k_bench"), nil)
			return c, err
		}},
	}
}

// BenchmarkRelayRoundTrip sends one 1 KiB message at a time and waits for
// its echo, directly and through the gate: the latency the relay adds.
//
//	go test -run '^$' -bench RelayRoundTrip ./internal/wsgate/
func BenchmarkRelayRoundTrip(b *testing.B) {
	msg := make([]byte, 1024)
	ctx := context.Background()
	for _, bc := range benchDials(b) {
		b.Run(bc.name, func(b *testing.B) {
			c, err := bc.dial()
			if err != nil {
				b.Fatal(err)
			}
			defer c.CloseNow()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRelayThroughput streams 1 KiB binary messages to the echo
// upstream and reads the echoes back, directly and through the gate, in
// the same run.
//
//	go test -run '^$' -bench RelayThroughput ./internal/wsgate/
func BenchmarkRelayThroughput(b *testing.B) {
	msg := make([]byte, 1024)
	ctx := context.Background()
	for _, bc := range benchDials(b) {
		b.Run(bc.name, func(b *testing.B) {
			c, err := bc.dial()
			if err != nil {
				b.Fatal(err)
			}
			defer c.CloseNow()
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			errc := make(chan error, 1)
			go func() {
				for range b.N {
					if err := c.Write(ctx, websocket.MessageBinary, msg); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for range b.N {
				if _, _, err := c.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
