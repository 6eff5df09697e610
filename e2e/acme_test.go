package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-security/rampart/internal/pebbletest"
)

// acmeE2EHost is the name rampart obtains a certificate for. autocert
// refuses single-label names, so Pebble's validation authority resolves
// it to 127.0.0.1 through the test DNS server of package pebbletest.
const acmeE2EHost = "rampart.test"

// TestACMEThroughBinary runs `rampart serve` in production mode with
// tls.acme pointed at a real Pebble server and shows that the first TLS
// client naming the host gets a certificate for it that chains to Pebble's
// issuing root, and that its request reaches the upstream. Each subtest
// leaves only one challenge type reachable by Pebble (the other port has
// no listener), so the certificate can only have come from that one. With
// Pebble stopped, a restarted rampart serves the certificate from its
// cache_dir.
func TestACMEThroughBinary(t *testing.T) {
	bin := pebbletest.Binary(t)
	tests := []struct {
		name string
		// reach picks the ports Pebble validates on from rampart's public
		// (TLS) and HTTP ports and a port nothing listens on.
		reach func(tlsPort, httpPort, closed int) (pebbleTLS, pebbleHTTP int)
	}{
		{name: "tls-alpn-01 on the public listener", reach: func(tlsPort, _, closed int) (int, int) { return tlsPort, closed }},
		{name: "http-01 on the redirect listener", reach: func(_, httpPort, closed int) (int, int) { return closed, httpPort }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t)
			// Pebble must know rampart's ports when it starts, and rampart
			// Pebble's directory, so rampart's ports are chosen up front.
			publicAddr, httpAddr, closedAddr := pebbletest.FreeAddr(t), pebbletest.FreeAddr(t), pebbletest.FreeAddr(t)
			pTLS, pHTTP := tc.reach(acmePort(t, publicAddr), acmePort(t, httpAddr), acmePort(t, closedAddr))
			pb := pebbletest.Start(t, bin, pebbletest.Options{Host: acmeE2EHost, TLSPort: pTLS, HTTPPort: pHTTP})

			cacheDir := filepath.Join(t.TempDir(), "acme")
			config := func(publicAddr, httpAddr string) string {
				return fmt.Sprintf(`mode: production
log: {level: info, format: json}
server:
  listen: %s
  http_listen: %s
  admin_listen: 127.0.0.1:0
  shutdown_timeout: 5s
tls:
  acme:
    enabled: true
    hosts: [%s]
    email: ops@rampart.test
    directory_url: %s
    ca_roots_file: %s
    cache_dir: %s
upstream:
  url: %s
cors:
  allowed_origins: ["https://app.example.com"]
routes:
  - name: public
    path: /public/*
`, publicAddr, httpAddr, acmeE2EHost, pb.DirectoryURL, pb.CertFile, cacheDir, up.URL)
			}
			g := startGateway(t, config(publicAddr, httpAddr))

			// The first handshake naming the host makes rampart obtain the
			// certificate; the client waits for it. The client trusts
			// only Pebble's issuing root, and dials the gateway for the
			// host name as a browser would after a DNS lookup.
			c := &http.Client{
				Timeout: 2 * time.Minute,
				Transport: &http.Transport{
					TLSClientConfig: &tls.Config{RootCAs: pb.Roots()},
					DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
						if addr != net.JoinHostPort(acmeE2EHost, strconv.Itoa(acmePort(t, g.public))) {
							return nil, fmt.Errorf("unexpected dial to %s", addr)
						}
						var d net.Dialer
						return d.DialContext(ctx, network, g.public)
					},
				},
			}
			url := fmt.Sprintf("https://%s:%d/public/acme?x=1", acmeE2EHost, acmePort(t, g.public))
			resp, body := get(t, c, url, nil)
			if resp.StatusCode != http.StatusOK || body != `{"path":"/public/acme"}` {
				t.Fatalf("GET %s: %d %q", url, resp.StatusCode, body)
			}
			leaf := resp.TLS.PeerCertificates[0]
			if !slices.Equal(leaf.DNSNames, []string{acmeE2EHost}) {
				t.Errorf("certificate names %q, want [%s]", leaf.DNSNames, acmeE2EHost)
			}
			chain := resp.TLS.VerifiedChains[0]
			if root := chain[len(chain)-1]; !root.Equal(pb.Root) {
				t.Errorf("chain ends at %q, want Pebble's root %q", root.Subject, pb.Root.Subject)
			}
			if len(chain) < 3 {
				t.Errorf("chain of %d certificates; want leaf, Pebble's intermediate and root", len(chain))
			}
			if resp.TLS.Version != tls.VersionTLS13 {
				t.Errorf("TLS version %s", tls.VersionName(resp.TLS.Version))
			}
			if resp.Header.Get("Strict-Transport-Security") == "" {
				t.Error("no HSTS header on the ACME-served response")
			}
			if n := countPath(up.seen(), "/public/acme"); n != 1 {
				t.Errorf("upstream saw /public/acme %d times, want 1", n)
			}

			// The HTTP listener still redirects everything that is not a
			// challenge, and answers no challenge token it did not issue.
			noFollow := &http.Client{
				Timeout:       10 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
			r := acmePlainGet(t, noFollow, g.http, "/public/acme?x=1")
			if want := fmt.Sprintf("https://%s:%d/public/acme?x=1", acmeE2EHost, acmePort(t, g.public)); r.StatusCode != http.StatusMovedPermanently || r.Header.Get("Location") != want {
				t.Errorf("plain HTTP: %d Location %q, want 301 to %s", r.StatusCode, r.Header.Get("Location"), want)
			}
			if r = acmePlainGet(t, noFollow, g.http, "/.well-known/acme-challenge/not-a-token"); r.StatusCode != http.StatusNotFound {
				t.Errorf("unknown challenge token: %d, want 404", r.StatusCode)
			}

			// A name rampart is not configured for gets no certificate, and
			// the CA is never asked for one.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d := tls.Dialer{Config: &tls.Config{ServerName: "other.test", InsecureSkipVerify: true}}
			if conn, err := d.DialContext(ctx, "tcp", g.public); err == nil {
				conn.Close()
				t.Error("handshake for an unconfigured host succeeded")
			}
			if strings.Contains(pb.Output(), "other.test") {
				t.Error("Pebble was asked about other.test")
			}

			// With the CA gone, a restarted rampart on the same cache_dir
			// serves the stored certificate (a restart does not spend the
			// CA's rate limits), also to a client that sends no name.
			pb.Stop(t)
			g2 := startGateway(t, config("127.0.0.1:0", "127.0.0.1:0"))
			for name, conf := range map[string]*tls.Config{
				"server name":    {ServerName: acmeE2EHost, RootCAs: pb.Roots()},
				"no server name": {InsecureSkipVerify: true}, // dialing an IP sends no SNI
			} {
				d := tls.Dialer{Config: conf}
				conn, err := d.DialContext(ctx, "tcp", g2.public)
				if err != nil {
					t.Errorf("restarted, %s: %v", name, err)
					continue
				}
				if got := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]; !got.Equal(leaf) {
					t.Errorf("restarted, %s: certificate serial %v, want the stored %v", name, got.SerialNumber, leaf.SerialNumber)
				}
				conn.Close()
			}
		})
	}
}

func acmePort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// acmePlainGet sends GET path to the plain HTTP listener at addr with the
// ACME host in the Host header, as Pebble and browsers do.
func acmePlainGet(t *testing.T, c *http.Client, addr, path string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = acmeE2EHost
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET http://%s%s: %v", addr, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}
