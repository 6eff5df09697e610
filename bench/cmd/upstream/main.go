// Command upstream is the benchmark's stand-in API: every request gets the
// same ~100-byte JSON answer. It listens on plain HTTP for the proxies under
// test and, when given a certificate, on HTTPS too for the "direct" target
// (the ceiling no proxy can beat).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// body is 100 bytes, a typical small API answer.
var body = []byte(`{"id":"7f3c9a2e-1b4d-4e8a-9c6f-2d5b8e1a7c3f","status":"ok","items":[1,2,3],"note":"bench-upstream"}` + "\n")

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

func run() error {
	plain := flag.String("listen", "127.0.0.1:0", "plain HTTP address for the proxies")
	tlsAddr := flag.String("tls-listen", "", "HTTPS address for direct measurement (needs -cert and -key)")
	certFile := flag.String("cert", "", "certificate PEM")
	keyFile := flag.String("key", "", "private key PEM")
	flag.Parse()

	length := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Drain any request body so the connection stays reusable.
		_, _ = io.Copy(io.Discard, r.Body)
		hd := w.Header()
		hd["Content-Type"] = []string{"application/json"}
		hd["Content-Length"] = []string{length}
		_, _ = w.Write(body)
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	errc := make(chan error, 2)
	servers := []*http.Server{}
	ln, err := net.Listen("tcp", *plain)
	if err != nil {
		return err
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	servers = append(servers, s)
	go func() { errc <- s.Serve(ln) }()
	fmt.Println("http", ln.Addr())

	if *tlsAddr != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return err
		}
		tln, err := net.Listen("tcp", *tlsAddr)
		if err != nil {
			return err
		}
		ts := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       5 * time.Minute,
			TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		}
		servers = append(servers, ts)
		go func() { errc <- ts.ServeTLS(tln, "", "") }()
		fmt.Println("https", tln.Addr())
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	return nil
}
