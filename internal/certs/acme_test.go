package certs

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
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
// server for Pebble's validation authority (pebble -dnsserver) that
// resolves acmeHost to 127.0.0.1. Validation is real: Pebble connects to
// the test's listeners and checks the challenge response.
const acmeHost = "rampart.test"

// TestACMEPebble obtains certificates from a real Pebble ACME server on
// loopback, once through tls-alpn-01 on the TLS listener and once through
// http-01 on the HTTP listener, and shows a TLS client receiving a
// certificate that chains to Pebble's root.
func TestACMEPebble(t *testing.T) {
	pebble := findPebble(t)
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
			pb := startPebble(t, pebble, port(t, httpLn), port(t, tlsLn))

			cacheDir := filepath.Join(t.TempDir(), "acme")
			src, err := NewACMESource(ACMEOptions{
				Hosts:          []string{acmeHost},
				Email:          "ops@rampart.test",
				CacheDir:       cacheDir,
				DirectoryURL:   pb.directoryURL,
				CARootsFile:    pb.certFile,
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
					RootCAs:    pb.roots(t),
				}},
			}
			resp, err := client.Get("https://" + tlsAddr + "/")
			if err != nil {
				t.Fatalf("GET over TLS: %v\npebble output:\n%s", err, pb.output.String())
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
			if root := chain[len(chain)-1]; !root.Equal(pb.root) {
				t.Errorf("chain ends at %q, want Pebble's root %q", root.Subject, pb.root.Subject)
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
			pb.stop(t)
			restarted, err := NewACMESource(ACMEOptions{
				Hosts: []string{acmeHost}, CacheDir: cacheDir,
				DirectoryURL: pb.directoryURL, CARootsFile: pb.certFile,
			})
			if err != nil {
				t.Fatal(err)
			}
			addr := serveTLS(t, ServerConfig(restarted), okHandler)
			st, err := handshake(t, addr, &tls.Config{ServerName: acmeHost, RootCAs: pb.roots(t)})
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

// findPebble returns the pebble binary from PATH or $(go env GOPATH)/bin.
// It skips the test when pebble is missing, unless
// RAMPART_TEST_REQUIRE_SERVICES=1.
func findPebble(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "pebble")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	msg := "pebble not found in PATH or $(go env GOPATH)/bin; install with go install github.com/letsencrypt/pebble/v2/cmd/pebble@latest"
	if os.Getenv("RAMPART_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

type pebbleServer struct {
	directoryURL string
	rootsURL     string
	certFile     string // Pebble's own HTTPS certificate, trusted via CARootsFile
	root         *x509.Certificate
	output       *syncBuffer
	cmd          *exec.Cmd
	exited       chan struct{}
}

// startPebble writes a Pebble configuration whose validation authority
// connects to httpPort and tlsPort on whatever acmeHost resolves to (the
// test DNS server says 127.0.0.1), starts Pebble and waits for its
// directory to answer.
func startPebble(t *testing.T, binary string, httpPort, tlsPort int) *pebbleServer {
	t.Helper()
	dir := t.TempDir()
	// Pebble's HTTPS certificate for 127.0.0.1, made by rampart itself.
	certFile, keyFile, err := SelfSigned(filepath.Join(dir, "tls"), nil, time.Now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr := startDNS(t, acmeHost, net.IPv4(127, 0, 0, 1))
	listenAddr, mgmtAddr := freeAddr(t), freeAddr(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           listenAddr,
		"managementListenAddress": mgmtAddr,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                httpPort,
		"tlsPort":                 tlsPort,
		"ocspResponderURL":        "",
		"keyAlgorithm":            "ecdsa",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"profiles": map[string]any{
			"default": map[string]any{"description": "rampart test", "validityPeriod": 7776000},
		},
	}}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "pebble-config.json")
	writeFile(t, cfgFile, data)

	pb := &pebbleServer{
		directoryURL: "https://" + listenAddr + "/dir",
		rootsURL:     "https://" + mgmtAddr + "/roots/0",
		certFile:     certFile,
		output:       &syncBuffer{},
		exited:       make(chan struct{}),
	}
	pb.cmd = exec.Command(binary, "-config", cfgFile, "-dnsserver", dnsAddr)
	pb.cmd.Dir = dir
	pb.cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // validate at once instead of after a random delay
		"PEBBLE_WFE_NONCEREJECT=0", // no deliberately rejected nonces
	)
	pb.cmd.Stdout = pb.output
	pb.cmd.Stderr = pb.output
	if err := pb.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		pb.cmd.Wait()
		close(pb.exited)
	}()
	t.Cleanup(func() {
		pb.stop(t)
		if t.Failed() {
			t.Logf("pebble output:\n%s", pb.output.String())
		}
	})
	pb.get(t, pb.directoryURL)
	pb.root = pb.fetchRoot(t)
	return pb
}

func (pb *pebbleServer) stop(t *testing.T) {
	select {
	case <-pb.exited:
		return
	default:
	}
	if err := pb.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill pebble: %v", err)
	}
	<-pb.exited
}

// httpClient trusts Pebble's HTTPS certificate.
func (pb *pebbleServer) httpClient(t *testing.T) *http.Client {
	t.Helper()
	pemData, err := os.ReadFile(pb.certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}

// get polls url until Pebble answers 200 and returns the body. Pebble
// logs its addresses before it binds them and starts the management
// listener in its own goroutine, so there is no earlier signal to wait on.
func (pb *pebbleServer) get(t *testing.T, url string) []byte {
	t.Helper()
	client := pb.httpClient(t)
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return body
			}
			err = errors.Join(rerr, errors.New(resp.Status))
		}
		select {
		case <-pb.exited:
			t.Fatalf("pebble exited:\n%s", pb.output.String())
		case <-deadline:
			t.Fatalf("GET %s: %v\n%s", url, err, pb.output.String())
		case <-tick.C:
		}
	}
}

// fetchRoot downloads the root certificate of Pebble's CA from its
// management interface.
func (pb *pebbleServer) fetchRoot(t *testing.T) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pb.get(t, pb.rootsURL))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatal("pebble root: no PEM certificate")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("pebble root: %v", err)
	}
	return root
}

func (pb *pebbleServer) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	return rootPool(pb.root)
}

func port(t *testing.T, ln net.Listener) int {
	t.Helper()
	return ln.Addr().(*net.TCPAddr).Port
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for a server (Pebble) that cannot be handed a listener.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startDNS serves DNS over TCP (the transport Pebble's -dnsserver uses) on a
// loopback port: name resolves to ip (A record), every other name is
// NXDOMAIN, and AAAA for name is empty.
func startDNS(t *testing.T, name string, ip net.IP) string {
	t.Helper()
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	fqdn := dnsmessage.MustNewName(name + ".")
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				for {
					conn.SetDeadline(time.Now().Add(30 * time.Second))
					var n uint16
					if err := binary.Read(conn, binary.BigEndian, &n); err != nil {
						return
					}
					req := make([]byte, n)
					if _, err := io.ReadFull(conn, req); err != nil {
						return
					}
					resp, err := dnsAnswer(req, fqdn, ip)
					if err != nil {
						return
					}
					out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
					if _, err := conn.Write(append(out, resp...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func dnsAnswer(req []byte, name dnsmessage.Name, ip net.IP) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	known := strings.EqualFold(q.Name.String(), name.String())
	rcode := dnsmessage.RCodeSuccess
	if !known {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RCode: rcode})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if known && q.Type == dnsmessage.TypeA {
		var a [4]byte
		copy(a[:], ip.To4())
		hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
		if err := b.AResource(hdr, dnsmessage.AResource{A: a}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
