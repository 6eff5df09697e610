package audit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/reqinfo"
)

// withInfo plays the outer reqinfo layer and an inner auth layer.
func withInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &reqinfo.Info{ID: "req-1", ClientIP: netip.MustParseAddr("192.0.2.7"), Route: "agents"}
		next.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), info)))
	})
}

func authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqinfo.From(r.Context()).Principal = reqinfo.Principal{Kind: "api_key", ID: "key_42", Permissions: reqinfo.PermWrite}
		next.ServeHTTP(w, r)
	})
}

func TestMiddlewareRecordsStateChangingRequests(t *testing.T) {
	tests := []struct {
		method  string
		handler http.HandlerFunc
		status  int
		outcome string
		audited bool
	}{
		{http.MethodPost, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) }, 201, OutcomeOK, true},
		{http.MethodDelete, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "gone") }, 200, OutcomeOK, true},
		{http.MethodPut, func(http.ResponseWriter, *http.Request) {}, 200, OutcomeOK, true},
		{http.MethodPatch, func(w http.ResponseWriter, r *http.Request) {
			reqinfo.From(r.Context()).Outcome = "forbidden"
			w.WriteHeader(http.StatusForbidden)
		}, 403, "forbidden", true},
		{http.MethodPost, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }, 502, OutcomeError, true},
		{http.MethodGet, func(w http.ResponseWriter, _ *http.Request) {}, 200, "", false},
		{http.MethodHead, func(w http.ResponseWriter, _ *http.Request) {}, 200, "", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %d", tc.method, tc.status), func(t *testing.T) {
			sink := &memSink{}
			l, err := New(sink, Options{Window: -1})
			must(t, err)
			h := withInfo(Middleware(l, MiddlewareOptions{})(authenticate(tc.handler)))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, "/agents/7?token=secret", nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d", rec.Code)
			}
			must(t, l.Close(context.Background()))
			if !tc.audited {
				if sink.count() != 0 {
					t.Fatal("read-only request audited")
				}
				return
			}
			if sink.count() != 1 {
				t.Fatalf("events %v", sink.sizes())
			}
			ev := sink.batches[0][0].Event
			want := Event{Type: TypeRequest, User: "key_42", SourceIP: netip.MustParseAddr("192.0.2.7"), RequestID: "req-1", Route: "agents", Outcome: tc.outcome,
				Details: map[string]any{"method": tc.method, "status": tc.status, "principal_kind": "api_key"}}
			ev.Timestamp = time.Time{}
			if fmt.Sprint(ev) != fmt.Sprint(want) {
				t.Fatalf("event\n got %+v\nwant %+v", ev, want)
			}
			if js := string(sink.batches[0][0].JSON); strings.Contains(js, "token") || strings.Contains(js, "/agents/7") {
				t.Fatalf("raw path or query in event: %s", js)
			}
		})
	}
}

// headerSpy checks, when the status goes out, that the event is already durable.
type headerSpy struct {
	http.ResponseWriter
	sink    *memSink
	durable bool
}

func (s *headerSpy) WriteHeader(code int) {
	s.durable = s.sink.count() == 1
	s.ResponseWriter.WriteHeader(code)
}

func TestMiddlewareHoldsResponseUntilDurable(t *testing.T) {
	sink := &memSink{}
	l, err := New(sink, Options{Window: -1})
	must(t, err)
	defer l.Close(context.Background())
	h := withInfo(Middleware(l, MiddlewareOptions{})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})))
	spy := &headerSpy{ResponseWriter: httptest.NewRecorder(), sink: sink}
	h.ServeHTTP(spy, httptest.NewRequest(http.MethodPost, "/", nil))
	if !spy.durable {
		t.Fatal("status sent before the audit event was durable")
	}
}

func TestMiddlewareQueueFullRefusesBeforeUpstream(t *testing.T) {
	sink := &memSink{entered: make(chan struct{}, 4), block: make(chan struct{})}
	l, err := New(sink, Options{QueueSize: 1, Window: -1, EnqueueTimeout: time.Millisecond})
	must(t, err)
	ctx := context.Background()
	must(t, l.Enqueue(ctx, testEvent(1)))
	<-sink.entered // the only slot is held by a blocked write
	called := false
	h := withInfo(Middleware(l, MiddlewareOptions{NoWait: true})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusServiceUnavailable || called || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, upstream called %v", rec.Code, called)
	}
	// Reads are not audited and still pass.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK || !called {
		t.Fatalf("GET: %d", rec.Code)
	}
	close(sink.block)
	must(t, l.Close(ctx))
}

func TestMiddlewarePanicIsRecorded(t *testing.T) {
	sink := &memSink{}
	l, err := New(sink, Options{Window: -1})
	must(t, err)
	h := withInfo(Middleware(l, MiddlewareOptions{})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })))
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic swallowed")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", nil))
	}()
	must(t, l.Close(context.Background()))
	if sink.count() != 1 || sink.batches[0][0].Event.Outcome != "panic" {
		t.Fatalf("%v", sink.sizes())
	}
}

func TestMiddlewareKeepsFlusherHijackerUnwrap(t *testing.T) {
	sink := &memSink{}
	l, err := New(sink, Options{Window: -1})
	must(t, err)
	defer l.Close(context.Background())
	srv := httptest.NewServer(withInfo(Middleware(l, MiddlewareOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(interface{ Unwrap() http.ResponseWriter }); !ok {
			t.Error("no Unwrap")
		}
		if r.URL.Path == "/flush" {
			must(t, http.NewResponseController(w).Flush())
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		brw.Flush()
	}))))
	defer srv.Close()
	for _, path := range []string{"/flush", "/hijack"} {
		resp, err := http.Post(srv.URL+path, "text/plain", nil)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	must(t, l.Flush(context.Background()))
	if sink.count() != 2 {
		t.Fatalf("events %v", sink.sizes())
	}
	if o := sink.batches[1][0].Event.Outcome; o != "hijacked" {
		t.Fatalf("hijack outcome %q", o)
	}
}

var (
	_ http.Hijacker = (*responseWriter)(nil)
	_ http.Flusher  = (*responseWriter)(nil)
)

func ExampleMiddleware() {
	sink := NewStreamSink(os.Stdout)
	now := func() time.Time { return time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC) }
	l, _ := New(sink, Options{Window: -1, Now: now})
	h := Middleware(l, MiddlewareOptions{})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
	}))
	req := httptest.NewRequest(http.MethodPost, "/keys", nil)
	info := &reqinfo.Info{ID: "req-7", Route: "admin.keys", Principal: reqinfo.Principal{Kind: "user", ID: "alice"}}
	req = req.WithContext(reqinfo.With(req.Context(), info))
	h.ServeHTTP(httptest.NewRecorder(), req)
	l.Close(context.Background())
	// Output:
	// {"timestamp":"2026-01-15T10:30:00Z","event_type":"request","user":"alice","request_id":"req-7","route":"admin.keys","outcome":"ok","details":{"method":"POST","principal_kind":"user","status":201}}
}
