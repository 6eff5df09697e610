package metrics

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

var update = flag.Bool("update", false, "rewrite golden files (testdata/metrics.golden, deploy/prometheus, deploy/grafana)")

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestMetrics(t *testing.T, opts ...Option) (*Metrics, *prometheus.Registry, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	m, err := New(reg, append([]Option{WithClock(clock.Now)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, reg, clock
}

// withRoute wraps h like the chain does: reqinfo outside, a route matcher inside.
func withRoute(route string, mw func(http.Handler) http.Handler, h http.Handler) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info := reqinfo.From(r.Context()); info != nil {
			info.Route = route
		}
		h.ServeHTTP(w, r)
	})
	outer := mw(inner)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outer.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), &reqinfo.Info{})))
	})
}

func TestNew(t *testing.T) {
	t.Run("nil registerer", func(t *testing.T) {
		if _, err := New(nil); err == nil {
			t.Fatal("New(nil) succeeded")
		}
	})
	t.Run("bad slow threshold", func(t *testing.T) {
		if _, err := New(prometheus.NewRegistry(), WithSlowRequestThreshold(0)); err == nil {
			t.Fatal("New with zero threshold succeeded")
		}
	})
	t.Run("second registration fails and leaves nothing behind", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		// Occupy one name in the middle of the list so New fails part way.
		if err := reg.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: NameAuditEvents, Help: "x"})); err != nil {
			t.Fatal(err)
		}
		if _, err := New(reg); err == nil {
			t.Fatal("New on a clashing registry succeeded")
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if len(mfs) != 1 {
			t.Errorf("registry holds %d families after the failed New, want only the clashing one", len(mfs))
		}
		// And the registry is usable by a fresh New once the clash is gone.
		reg2 := prometheus.NewRegistry()
		if _, err := New(reg2); err != nil {
			t.Fatalf("New: %v", err)
		}
		if _, err := New(reg2); err == nil {
			t.Fatal("second New on the same registry succeeded")
		}
	})
	t.Run("slow threshold becomes a bucket", func(t *testing.T) {
		got := buckets(1500 * time.Millisecond)
		if !cmp.Equal(got, []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 5, 10, 30}) {
			t.Errorf("buckets = %v", got)
		}
		if got := buckets(2 * time.Second); len(got) != len(DurationBuckets()) {
			t.Errorf("2s added twice: %v", got)
		}
	})
}

func TestMiddleware(t *testing.T) {
	tests := []struct {
		name      string
		route     string
		noInfo    bool
		method    string
		handler   func(clock *fakeClock) http.HandlerFunc
		wantLabel [3]string // route, method, status class
		wantSecs  float64
		wantSlow  float64
	}{
		{
			name: "status from WriteHeader", route: "orders", method: http.MethodPost,
			handler: func(c *fakeClock) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					c.Advance(30 * time.Millisecond)
					w.WriteHeader(http.StatusNotFound)
				}
			},
			wantLabel: [3]string{"orders", "POST", "4xx"}, wantSecs: 0.03,
		},
		{
			name: "write without header is 200", route: "orders", method: http.MethodGet,
			handler: func(*fakeClock) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }
			},
			wantLabel: [3]string{"orders", "GET", "2xx"},
		},
		{
			name: "nothing written is 200", route: "health", method: http.MethodHead,
			handler: func(*fakeClock) http.HandlerFunc {
				return func(http.ResponseWriter, *http.Request) {}
			},
			wantLabel: [3]string{"health", "HEAD", "2xx"},
		},
		{
			name: "early hints do not count as the status", route: "page", method: http.MethodGet,
			handler: func(*fakeClock) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusEarlyHints)
					w.WriteHeader(http.StatusBadGateway)
				}
			},
			wantLabel: [3]string{"page", "GET", "5xx"},
		},
		{
			name: "empty route is unmatched", route: "", method: http.MethodGet,
			handler: func(*fakeClock) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) }
			},
			wantLabel: [3]string{"unmatched", "GET", "4xx"},
		},
		{
			name: "no reqinfo is unmatched", noInfo: true, method: http.MethodGet,
			handler: func(*fakeClock) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {}
			},
			wantLabel: [3]string{"unmatched", "GET", "2xx"},
		},
		{
			name: "unknown method is folded", route: "orders", method: "BREW",
			handler: func(*fakeClock) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusMethodNotAllowed) }
			},
			wantLabel: [3]string{"orders", "OTHER", "4xx"},
		},
		{
			name: "slow request", route: "report", method: http.MethodGet,
			handler: func(c *fakeClock) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { c.Advance(2500 * time.Millisecond) }
			},
			wantLabel: [3]string{"report", "GET", "2xx"}, wantSecs: 2.5, wantSlow: 1,
		},
		{
			name: "exactly the threshold is not slow", route: "report", method: http.MethodGet,
			handler: func(c *fakeClock) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { c.Advance(2 * time.Second) }
			},
			wantLabel: [3]string{"report", "GET", "2xx"}, wantSecs: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, reg, clock := newTestMetrics(t)
			var h http.Handler
			if tc.noInfo {
				h = m.Middleware(tc.handler(clock))
			} else {
				h = withRoute(tc.route, m.Middleware, tc.handler(clock))
			}
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tc.method, "/raw/path/42?q=1", nil))

			l := tc.wantLabel
			if got := testutil.ToFloat64(m.requests.WithLabelValues(l[0], l[1], l[2])); got != 1 {
				t.Errorf("requests%v = %v, want 1", l, got)
			}
			if n := testutil.CollectAndCount(m.requests); n != 1 {
				t.Errorf("%d request series, want 1", n)
			}
			h2 := histogram(t, reg, NameRequestDuration, l[0])
			if h2.count != 1 || h2.sum != tc.wantSecs {
				t.Errorf("duration count %d sum %v, want 1 and %v", h2.count, h2.sum, tc.wantSecs)
			}
			if got := testutil.ToFloat64(m.slowRequests.WithLabelValues(l[0])); got != tc.wantSlow {
				t.Errorf("slow = %v, want %v", got, tc.wantSlow)
			}
		})
	}
}

func TestMiddlewarePanicCountsAs5xx(t *testing.T) {
	m, _, _ := newTestMetrics(t)
	h := withRoute("boom", m.Middleware, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	}))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic did not propagate")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	if got := testutil.ToFloat64(m.requests.WithLabelValues("boom", "GET", "5xx")); got != 1 {
		t.Errorf("5xx count = %v, want 1", got)
	}
}

type hist struct {
	count uint64
	sum   float64
}

func histogram(t *testing.T, g prometheus.Gatherer, name, route string) hist {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "route" && lp.GetValue() == route {
					return hist{mt.GetHistogram().GetSampleCount(), mt.GetHistogram().GetSampleSum()}
				}
			}
		}
	}
	return hist{}
}

// TestResponseWriterController proves http.ResponseController reaches the
// real connection through the wrapper: flush, deadlines and hijack on
// HTTP/1.1, and a clean ErrNotSupported for hijack on HTTP/2.
func TestResponseWriterController(t *testing.T) {
	m, reg, clock := newTestMetrics(t)
	errs := make(chan error, 4)
	h := withRoute("stream", m.Middleware, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			errs <- err
		}
		io.WriteString(w, "part1\n")
		if err := rc.Flush(); err != nil {
			errs <- err
		}
		if _, ok := w.(http.Flusher); !ok {
			errs <- errors.New("wrapper is not an http.Flusher")
		}
		if r.ProtoMajor == 2 {
			if _, _, err := rc.Hijack(); !errors.Is(err, http.ErrNotSupported) {
				errs <- err
			}
			return
		}
		clock.Advance(10 * time.Millisecond)
		conn, brw, err := rc.Hijack()
		if err != nil {
			errs <- err
			return
		}
		clock.Advance(time.Hour) // after the hijack: must not be timed
		brw.WriteString("part2\n")
		brw.Flush()
		conn.Close()
	}))

	t.Run("http1", func(t *testing.T) {
		done := make(chan struct{})
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(done)
			h.ServeHTTP(w, r)
		}))
		defer ts.Close()
		conn, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
		body, err := io.ReadAll(conn)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), "part1") || !strings.Contains(string(body), "part2") {
			t.Errorf("response %q lacks a part", body)
		}
		<-done // the hijacked handler may still be returning
		if got := testutil.ToFloat64(m.requests.WithLabelValues("stream", "GET", "2xx")); got != 1 {
			t.Errorf("2xx = %v, want 1", got)
		}
		if h := histogram(t, reg, NameRequestDuration, "stream"); h.sum != 0.01 {
			t.Errorf("duration sum = %v, want 0.01 (timed up to the hijack)", h.sum)
		}
	})
	t.Run("http2", func(t *testing.T) {
		ts := httptest.NewUnstartedServer(h)
		ts.EnableHTTP2 = true
		ts.StartTLS()
		defer ts.Close()
		resp, err := ts.Client().Get(ts.URL + "/s")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(b) != "part1\n" {
			t.Errorf("proto %d body %q", resp.ProtoMajor, b)
		}
	})
	close(errs)
	for err := range errs {
		t.Errorf("handler: %v", err)
	}
}

// TestWebSocketUpgrade runs a real WebSocket echo behind the middleware.
func TestWebSocketUpgrade(t *testing.T) {
	m, reg, clock := newTestMetrics(t)
	h := withRoute("ws", m.Middleware, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clock.Advance(5 * time.Millisecond)
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		m.WSConnect()
		clock.Advance(time.Hour)
		ctx := r.Context()
		typ, msg, err := c.Read(ctx)
		if err == nil {
			err = c.Write(ctx, typ, msg)
		}
		if err != nil {
			t.Errorf("echo: %v", err)
		}
		c.Close(websocket.StatusNormalClosure, "")
		m.WSDisconnect("client_closed")
	}))
	done := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		h.ServeHTTP(w, r)
	}))
	defer ts.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hi" {
		t.Fatalf("read %q, %v", msg, err)
	}
	c.Read(ctx) // the server's close
	c.CloseNow()
	<-done

	if got := testutil.ToFloat64(m.requests.WithLabelValues("ws", "GET", "1xx")); got != 1 {
		t.Errorf("1xx = %v, want 1", got)
	}
	if h := histogram(t, reg, NameRequestDuration, "ws"); h.sum != 0.005 {
		t.Errorf("duration sum = %v, want 0.005 (upgrade time only)", h.sum)
	}
	if got := testutil.ToFloat64(m.wsConnections); got != 0 {
		t.Errorf("connections = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.wsDisconnects.WithLabelValues("client_closed")); got != 1 {
		t.Errorf("disconnects = %v, want 1", got)
	}
}

func TestCertExpiryCountsDown(t *testing.T) {
	m, reg, clock := newTestMetrics(t)
	// The caller's clock may differ from ours; only the time left matters.
	callerNow := time.Date(2030, 5, 1, 0, 0, 0, 0, time.UTC)
	m.SetCertExpiry("api.example.com", callerNow.Add(20*24*time.Hour), callerNow)
	m.SetCertExpiry("admin", callerNow.Add(-24*time.Hour), callerNow)
	clock.Advance(7 * 24 * time.Hour)
	want := `
# HELP rampart_tls_certificate_expiry_days Days until the TLS certificate expires (negative once expired), by certificate name.
# TYPE rampart_tls_certificate_expiry_days gauge
rampart_tls_certificate_expiry_days{name="admin"} -8
rampart_tls_certificate_expiry_days{name="api.example.com"} 13
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), NameCertExpiryDays); err != nil {
		t.Error(err)
	}
	m.RemoveCert("admin")
	if n, err := testutil.GatherAndCount(reg, NameCertExpiryDays); err != nil || n != 1 {
		t.Errorf("after RemoveCert: %d series, %v", n, err)
	}
}

func TestAuditStats(t *testing.T) {
	m, reg, _ := newTestMetrics(t)
	names := []string{NameAuditQueueDepth, NameAuditQueueCap, NameAuditEvents, NameAuditRejections, NameAuditGroups}
	if n, err := testutil.GatherAndCount(reg, names...); err != nil || n != 0 {
		t.Fatalf("audit off: %d series, %v", n, err)
	}
	var mu sync.Mutex
	stats := AuditStats{Queued: 7, Capacity: 100, Written: 1000, Failed: 2, Rejected: 1, Groups: 40}
	m.AuditStatsFunc(func() AuditStats {
		mu.Lock()
		defer mu.Unlock()
		return stats
	})
	want := `
# HELP rampart_audit_events_total Audit events by result: written (durable) or failed (the sink refused the group commit).
# TYPE rampart_audit_events_total counter
rampart_audit_events_total{result="failed"} 2
rampart_audit_events_total{result="written"} 1000
# HELP rampart_audit_group_commits_total Audit group commits (one fsync each for the file sink).
# TYPE rampart_audit_group_commits_total counter
rampart_audit_group_commits_total 40
# HELP rampart_audit_queue_capacity Capacity of the audit queue.
# TYPE rampart_audit_queue_capacity gauge
rampart_audit_queue_capacity 100
# HELP rampart_audit_queue_depth Audit events accepted and not yet durable.
# TYPE rampart_audit_queue_depth gauge
rampart_audit_queue_depth 7
# HELP rampart_audit_rejections_total Requests refused with 503 because the audit queue stayed full.
# TYPE rampart_audit_rejections_total counter
rampart_audit_rejections_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// Read at scrape time, not at registration.
	mu.Lock()
	stats.Queued = 90
	mu.Unlock()
	want2 := `
# HELP rampart_audit_queue_depth Audit events accepted and not yet durable.
# TYPE rampart_audit_queue_depth gauge
rampart_audit_queue_depth 90
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want2), NameAuditQueueDepth); err != nil {
		t.Error(err)
	}
	m.AuditStatsFunc(nil)
	if n, err := testutil.GatherAndCount(reg, names...); err != nil || n != 0 {
		t.Errorf("after AuditStatsFunc(nil): %d series, %v", n, err)
	}
}

func TestNilMetricsIsNoOp(t *testing.T) {
	var m *Metrics
	m.AuthFailure("x")
	m.RateLimited("x")
	m.UpstreamError("x")
	m.WSConnect()
	m.WSDisconnect("x")
	m.AuditStatsFunc(func() AuditStats { return AuditStats{} })
	m.SetCertExpiry("x", time.Now(), time.Now())
	m.RemoveCert("x")
	called := false
	h := m.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if !called {
		t.Error("nil Metrics middleware did not call next")
	}
}

func TestUpstreamErrorKind(t *testing.T) {
	// A port nobody listens on: bind, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()
	_, refused := net.Dial("tcp", closedAddr)

	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	_, untrusted := (&http.Client{Transport: &http.Transport{}}).Get(tlsSrv.URL)

	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	_, tlsToPlain := tls.Dial("tcp", plain.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})

	tests := []struct {
		name string
		err  error
		want string
	}{
		{"refused", refused, UpstreamRefused},
		{"untrusted certificate", untrusted, UpstreamTLS},
		{"tls to a plain server", tlsToPlain, UpstreamTLS},
		{"dns", &net.DNSError{Err: "no such host", Name: "upstream.invalid", IsNotFound: true}, UpstreamDNS},
		{"deadline", context.DeadlineExceeded, UpstreamTimeout},
		{"canceled", context.Canceled, UpstreamCanceled},
		{"net timeout", &net.OpError{Op: "read", Err: timeoutErr{}}, UpstreamTimeout},
		{"other", errors.New("boom"), UpstreamOther},
		{"nil", nil, UpstreamOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := UpstreamErrorKind(tc.err); got != tc.want {
				t.Errorf("UpstreamErrorKind(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// observeAll makes one deterministic observation on every collector.
func observeAll(t *testing.T, m *Metrics, clock *fakeClock) {
	t.Helper()
	req := func(route, method string, status int, took time.Duration) {
		h := withRoute(route, m.Middleware, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			clock.Advance(took)
			w.WriteHeader(status)
		}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/raw", nil))
	}
	req("orders", http.MethodGet, http.StatusOK, 12*time.Millisecond)
	req("orders", http.MethodGet, http.StatusOK, 80*time.Millisecond)
	req("orders", http.MethodPost, http.StatusCreated, 300*time.Millisecond)
	req("orders", http.MethodPost, http.StatusBadGateway, 3*time.Second)
	req("", http.MethodGet, http.StatusNotFound, time.Millisecond)
	m.UpstreamError(UpstreamTimeout)
	m.AuthFailure("invalid")
	m.AuthFailure("invalid")
	m.AuthFailure("missing")
	m.RateLimited("simulation")
	m.WSConnect()
	m.WSConnect()
	m.WSDisconnect("idle")
	m.AuditStatsFunc(func() AuditStats {
		return AuditStats{Queued: 3, Capacity: 1024, Written: 500, Failed: 1, Rejected: 1, Groups: 20}
	})
	m.SetCertExpiry("gateway", clock.Now().Add(30*24*time.Hour), clock.Now())
}

// TestMetricsGolden pins the /metrics output of a fresh registry.
func TestMetricsGolden(t *testing.T) {
	m, reg, clock := newTestMetrics(t)
	observeAll(t, m, clock)
	ts := httptest.NewServer(Handler(reg))
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	golden(t, filepath.Join("testdata", "metrics.golden"), got)
}

// golden compares got with the file at path, or rewrites it under -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (-want +got), rerun with -update if intended:\n%s", path, cmp.Diff(string(want), string(got)))
	}
}

func TestStatusClass(t *testing.T) {
	for code, want := range map[int]string{0: "other", 99: "other", 100: "1xx", 101: "1xx", 200: "2xx", 304: "3xx",
		404: "4xx", 499: "4xx", 503: "5xx", 599: "5xx", 600: "other", -200: "other"} {
		if got := statusClass(code); got != want {
			t.Errorf("statusClass(%d) = %q, want %q", code, got, want)
		}
	}
}

func BenchmarkMiddleware(b *testing.B) {
	m, err := New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	h := withRoute("orders", m.Middleware, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	req := httptest.NewRequest(http.MethodGet, "/orders/1", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := httptest.NewRecorder()
		for pb.Next() {
			h.ServeHTTP(w, req)
		}
	})
}
