package reqinfo

import (
	"bufio"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/rampart-security/rampart/internal/clientip"
)

// RequestIDHeader carries the request ID both ways.
const RequestIDHeader = "X-Request-ID"

// Middleware creates the request's Info: a request ID (a well-formed
// X-Request-ID from the client is kept, anything else replaced), the client IP
// through trusted proxies (an unparsable forwarding header is refused with
// 400), and a response writer that records status and bytes into the Info so
// outer layers can read them after next returns.
func Middleware(ips *clientip.Resolver, now func() time.Time) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := &Info{Start: now(), ID: r.Header.Get(RequestIDHeader)}
			if !validRequestID(info.ID) {
				info.ID = newRequestID()
				r.Header.Set(RequestIDHeader, info.ID)
			}
			w.Header().Set(RequestIDHeader, info.ID)
			rw := &responseWriter{ResponseWriter: w, info: info}
			r = r.WithContext(With(r.Context(), info))
			ip, err := ips.Resolve(r.RemoteAddr, r.Header.Values("X-Forwarded-For"))
			if err != nil {
				info.ClientIP, _ = clientip.Peer(r.RemoteAddr)
				Reject(rw, r, http.StatusBadRequest, "bad_forwarded_for", "the forwarding headers could not be parsed")
				return
			}
			info.ClientIP = ip
			next.ServeHTTP(rw, r)
		})
	}
}

func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	x, y := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i], b[8+i] = byte(x>>(8*i)), byte(y>>(8*i))
	}
	return hex.EncodeToString(b[:])
}

// responseWriter records status and size. It keeps Flusher and Hijacker and
// implements Unwrap so http.ResponseController and upgrades work through it.
type responseWriter struct {
	http.ResponseWriter
	info *Info
}

func (w *responseWriter) WriteHeader(code int) {
	if w.info.Status == 0 || w.info.Status < 200 && code >= 200 {
		w.info.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.info.Status == 0 {
		w.info.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.info.Bytes += int64(n)
	return n, err
}

func (w *responseWriter) Flush() {
	if w.info.Status == 0 {
		w.info.Status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.info.Status == 0 {
		w.info.Status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
