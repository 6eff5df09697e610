// Command floor is the bare Go reverse proxy the benchmark measures rampart
// against: net/http's TLS server, httputil.ReverseProxy with a keep-alive
// transport sized for the load and pooled copy buffers, and one middleware
// that sets the same four security headers as every other target. Nothing built on net/http can do
// less work per request, so its numbers are the floor of what rampart can
// reach without leaving the standard library.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// securityHeaders are the four headers every target sets, pre-built so the
// per-request cost is four map assignments.
var securityHeaders = map[string][]string{
	"Strict-Transport-Security": {"max-age=31536000; includeSubDomains"},
	"Content-Security-Policy":   {"default-src 'none'; frame-ancestors 'none'"},
	"X-Frame-Options":           {"DENY"},
	"X-Content-Type-Options":    {"nosniff"},
}

func run() error {
	addr := flag.String("listen", "127.0.0.1:0", "HTTPS address")
	upstream := flag.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:8000")
	certFile := flag.String("cert", "", "certificate PEM")
	keyFile := flag.String("key", "", "private key PEM")
	transport := flag.String("transport", "tuned", "tuned: idle pool sized by -max-idle; default: http.DefaultTransport (2 idle conns per host)")
	maxIdle := flag.Int("max-idle", 256, "idle upstream connections kept (tuned transport)")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this loopback address (profiling runs)")
	pooled := flag.Bool("buffer-pool", true, "reuse the 32 KiB copy buffers instead of allocating one per response")
	flag.Parse()

	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		return fmt.Errorf("-upstream %q is not an absolute URL", *upstream)
	}
	var rt http.RoundTripper
	switch *transport {
	case "tuned":
		rt = &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          *maxIdle,
			MaxIdleConnsPerHost:   *maxIdle,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			DisableCompression:    true,
		}
	case "default":
		rt = http.DefaultTransport
	default:
		return fmt.Errorf("-transport %q is not tuned or default", *transport)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.SetXForwarded()
		},
		Transport: rt,
	}
	if *pooled {
		rp.BufferPool = &bufferPool{}
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range securityHeaders {
			h[k] = v
		}
		rp.ServeHTTP(w, r)
	})

	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	if *pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return err
		}
		go func() { _ = http.Serve(pln, mux) }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	fmt.Println("https", ln.Addr())
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// bufferPool lends ReverseProxy its copy buffers; without one it allocates
// 32 KiB per response, which the garbage collector then has to reclaim.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
