package certs

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/pebbletest"
)

func TestNewACMESourceValidation(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "roots.pem")
	writeFile(t, notPEM, []byte("nothing here"))
	tests := []struct {
		name string
		opts ACMEOptions
		want []string
	}{
		{name: "everything missing", opts: ACMEOptions{}, want: []string{"at least one host", "cache directory"}},
		{name: "single label", opts: ACMEOptions{Hosts: []string{"localhost"}, CacheDir: dir}, want: []string{`"localhost" needs at least two labels`}},
		{name: "ip address", opts: ACMEOptions{Hosts: []string{"127.0.0.1"}, CacheDir: dir}, want: []string{"IP address"}},
		{name: "wildcard", opts: ACMEOptions{Hosts: []string{"*.example.com"}, CacheDir: dir}, want: []string{"wildcard"}},
		{name: "plain http directory", opts: ACMEOptions{Hosts: []string{"a.example"}, CacheDir: dir, DirectoryURL: "http://127.0.0.1/dir"}, want: []string{"must be https"}},
		{name: "missing roots file", opts: ACMEOptions{Hosts: []string{"a.example"}, CacheDir: dir, CARootsFile: filepath.Join(dir, "none.pem")}, want: []string{"none.pem"}},
		{name: "roots file without certificates", opts: ACMEOptions{Hosts: []string{"a.example"}, CacheDir: dir, CARootsFile: notPEM}, want: []string{"no PEM certificates"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewACMESource(tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	src, err := NewACMESource(ACMEOptions{Hosts: []string{"A.Example.", "b.example"}, CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(src.hosts, []string{"a.example", "b.example"}) {
		t.Errorf("hosts = %q", src.hosts)
	}
	for host, allowed := range map[string]bool{"a.example": true, "A.EXAMPLE:80": true, "b.example.": true, "c.example": false, "example": false} {
		if err := src.hostPolicy(context.Background(), host); (err == nil) != allowed {
			t.Errorf("hostPolicy(%q) = %v, want allowed %v", host, err, allowed)
		}
	}
	if !slices.Equal(ServerConfig(src).NextProtos, []string{"h2", "http/1.1", "acme-tls/1"}) {
		t.Errorf("NextProtos = %q", ServerConfig(src).NextProtos)
	}
	if !src.NotAfter().IsZero() {
		t.Errorf("NotAfter before any certificate = %v", src.NotAfter())
	}
	noALPN, err := NewACMESource(ACMEOptions{Hosts: []string{"a.example"}, CacheDir: dir, DisableTLSALPN: true})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(ServerConfig(noALPN).NextProtos, "acme-tls/1") {
		t.Error("acme-tls/1 offered with tls-alpn-01 disabled")
	}
}

// acmeHost is the name certificates are issued for in the Pebble test.
// autocert refuses single-label names such as "localhost", and the system
// resolver maps no dotted name to loopback, so the test runs its own DNS
// server for Pebble's validation authority (see package testutil/pebble)
// that resolves acmeHost to 127.0.0.1. Validation is real: Pebble connects to
// the test's listeners and checks the challenge response.
const acmeHost = "rampart.test"

// TestACMEPebble obtains certificates from a real Pebble ACME server on
// loopback, once through tls-alpn-01 on the TLS listener and once through
// http-01 on the HTTP listener, and shows a TLS client receiving a
// certificate that chains to Pebble's root.
func TestACMEPebble(t *testing.T) {
	bin := pebbletest.Binary(t)
	tests := []struct {
		name      string
		challenge string
	}{
		{name: "tls-alpn-01", challenge: "tls-alpn-01"},
		{name: "http-01", challenge: "http-01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tlsLn, httpLn := listen(t), listen(t)
			pb := pebbletest.Start(t, bin, pebbletest.Options{Host: acmeHost, HTTPPort: port(t, httpLn), TLSPort: port(t, tlsLn)})

			cacheDir := filepath.Join(t.TempDir(), "acme")
			src, err := NewACMESource(ACMEOptions{
				Hosts:          []string{acmeHost},
				Email:          "ops@rampart.test",
				CacheDir:       cacheDir,
				DirectoryURL:   pb.DirectoryURL,
				CARootsFile:    pb.CertFile,
				DisableTLSALPN: tc.challenge == "http-01",
			})
			if err != nil {
				t.Fatal(err)
			}

			var challenges, fallbacks atomic.Int32
			var httpHandler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "no http-01 here", http.StatusNotFound)
			})
			if tc.challenge == "http-01" {
				redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fallbacks.Add(1)
					http.Redirect(w, r, "https://"+acmeHost+r.URL.RequestURI(), http.StatusMovedPermanently)
				})
				acmeHandler := src.HTTPHandler(redirect)
				httpHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
						challenges.Add(1)
					}
					acmeHandler.ServeHTTP(w, r)
				})
			}
			httpAddr := serveOn(t, httpLn, nil, httpHandler)
			tlsAddr := serveOn(t, tlsLn, ServerConfig(src), okHandler)

			// The first handshake for the name makes rampart obtain the
			// certificate; the client waits for it.
			client := &http.Client{
				Timeout: 2 * time.Minute,
				Transport: &http.Transport{TLSClientConfig: &tls.Config{
					ServerName: acmeHost,
					RootCAs:    pb.Roots(),
				}},
			}
			resp, err := client.Get("https://" + tlsAddr + "/")
			if err != nil {
				t.Fatalf("GET over TLS: %v\npebble output:\n%s", err, pb.Output())
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("GET: %d %q", resp.StatusCode, body)
			}
			leaf := resp.TLS.PeerCertificates[0]
			if !slices.Contains(leaf.DNSNames, acmeHost) {
				t.Errorf("certificate names %q, want %s", leaf.DNSNames, acmeHost)
			}
			if !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
				t.Errorf("issuer %q is not Pebble's CA", leaf.Issuer.CommonName)
			}
			chain := resp.TLS.VerifiedChains[0]
			if root := chain[len(chain)-1]; !root.Equal(pb.Root) {
				t.Errorf("chain ends at %q, want Pebble's root %q", root.Subject, pb.Root.Subject)
			}
			if resp.TLS.Version != tls.VersionTLS13 {
				t.Errorf("version %s", tls.VersionName(resp.TLS.Version))
			}
			if !src.NotAfter().Equal(leaf.NotAfter) {
				t.Errorf("NotAfter = %v, want %v", src.NotAfter(), leaf.NotAfter)
			}

			if tc.challenge == "http-01" {
				if challenges.Load() == 0 {
					t.Error("Pebble never fetched an http-01 challenge")
				}
				// Everything else on the HTTP listener goes to the fallback.
				noFollow := &http.Client{
					Timeout:       30 * time.Second,
					CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
				}
				r, err := noFollow.Get("http://" + httpAddr + "/simulation/status?x=1")
				if err != nil {
					t.Fatal(err)
				}
				r.Body.Close()
				if r.StatusCode != http.StatusMovedPermanently || r.Header.Get("Location") != "https://"+acmeHost+"/simulation/status?x=1" || fallbacks.Load() != 1 {
					t.Errorf("fallback: %d %q (fallback calls %d)", r.StatusCode, r.Header.Get("Location"), fallbacks.Load())
				}
			}

			// With the CA gone, a new source on the same cache directory
			// (a restart) serves the stored certificate, also to clients
			// that send no server name.
			pb.Stop(t)
			restarted, err := NewACMESource(ACMEOptions{
				Hosts: []string{acmeHost}, CacheDir: cacheDir,
				DirectoryURL: pb.DirectoryURL, CARootsFile: pb.CertFile,
			})
			if err != nil {
				t.Fatal(err)
			}
			addr := serveTLS(t, ServerConfig(restarted), okHandler)
			st, err := handshake(t, addr, &tls.Config{ServerName: acmeHost, RootCAs: pb.Roots()})
			if err != nil {
				t.Fatalf("handshake after restart: %v", err)
			}
			if st.PeerCertificates[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 {
				t.Error("restarted source did not serve the cached certificate")
			}
			st, err = handshake(t, addr, &tls.Config{InsecureSkipVerify: true}) // no SNI: dialing an IP
			if err != nil {
				t.Fatalf("handshake without server name: %v", err)
			}
			if st.PeerCertificates[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 {
				t.Error("handshake without server name did not get the host's certificate")
			}
			if _, err := handshake(t, addr, &tls.Config{ServerName: "other.test", InsecureSkipVerify: true}); err == nil {
				t.Error("handshake for an unconfigured host succeeded")
			}
		})
	}
}

func port(t *testing.T, ln net.Listener) int {
	t.Helper()
	return ln.Addr().(*net.TCPAddr).Port
}
