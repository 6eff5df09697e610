package certs_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/rampart-security/rampart/internal/certs"
)

// A certificate from files, reloaded when the files change and on SIGHUP.
func ExampleServerConfig() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	src, err := certs.NewFileSource("/etc/rampart/tls.crt", "/etc/rampart/tls.key", log)
	if err != nil {
		log.Error("tls", "error", err)
		return
	}
	ctx := context.Background()
	go src.Watch(ctx, 10*time.Second)
	// On SIGHUP: if err := src.Reload(); err != nil { log.Error(...) }

	srv := &http.Server{Addr: ":443", TLSConfig: certs.ServerConfig(src)}
	_ = srv // srv.ListenAndServeTLS("", "")
}

// ACME: the HTTPS listener answers tls-alpn-01 through ServerConfig, the
// HTTP redirect listener answers http-01 through HTTPHandler.
func ExampleACMESource() {
	src, err := certs.NewACMESource(certs.ACMEOptions{
		Hosts:    []string{"api.example.com"},
		Email:    "ops@example.com",
		CacheDir: "/var/lib/rampart/acme",
	})
	if err != nil {
		return
	}
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
	httpsSrv := &http.Server{Addr: ":443", TLSConfig: certs.ServerConfig(src)}
	httpSrv := &http.Server{Addr: ":80", Handler: src.HTTPHandler(redirect)}
	_, _ = httpsSrv, httpSrv
}
