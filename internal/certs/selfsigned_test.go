package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	certFile, keyFile, err := SelfSigned(dir, []string{"rampart.internal", "10.0.0.7", "LOCALHOST"}, fixedClock(testNow), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if certFile != filepath.Join(dir, SelfSignedCertFile) || keyFile != filepath.Join(dir, SelfSignedKeyFile) {
		t.Errorf("paths = %s, %s", certFile, keyFile)
	}
	for file, want := range map[string]os.FileMode{keyFile: 0o600, dir: 0o700 | os.ModeDir} {
		info, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != want {
			t.Errorf("%s mode = %v, want %v", file, info.Mode(), want)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if !slices.Equal(leaf.DNSNames, []string{"localhost", "rampart.internal"}) {
		t.Errorf("DNS names = %q", leaf.DNSNames)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"127.0.0.1", "::1", "10.0.0.7"}) {
		t.Errorf("IP addresses = %q", ips)
	}
	if leaf.IsCA {
		t.Error("development certificate is a CA")
	}
	if !leaf.NotAfter.Equal(testNow.Add(90*24*time.Hour)) || !leaf.NotBefore.Equal(testNow.Add(-time.Hour)) {
		t.Errorf("validity %v .. %v", leaf.NotBefore, leaf.NotAfter)
	}

	// A real handshake: a client that trusts the certificate file accepts
	// it for every default name.
	src, err := NewFileSource(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, ServerConfig(src), okHandler)
	pemData, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		t.Fatal("certificate file holds no PEM certificate")
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "rampart.internal"} {
		st, err := handshake(t, addr, &tls.Config{RootCAs: roots, ServerName: name, Time: fixedClock(testNow)})
		if err != nil {
			t.Errorf("handshake for %s: %v", name, err)
			continue
		}
		if st.Version != tls.VersionTLS13 {
			t.Errorf("version %s", tls.VersionName(st.Version))
		}
	}
	if _, err := handshake(t, addr, &tls.Config{RootCAs: roots, ServerName: "example.com", Time: fixedClock(testNow)}); err == nil {
		t.Error("certificate accepted for a name it does not cover")
	}
}

func TestSelfSignedReuse(t *testing.T) {
	validity := 90 * 24 * time.Hour
	tests := []struct {
		name      string
		later     time.Duration
		hosts     []string
		corrupt   string // file to overwrite with garbage before the second call
		wantReuse bool
	}{
		{name: "same day", later: 0, wantReuse: true},
		{name: "eight days before expiry", later: validity - 8*24*time.Hour, wantReuse: true},
		{name: "six days before expiry", later: validity - 6*24*time.Hour, wantReuse: false},
		{name: "expired", later: validity + time.Hour, wantReuse: false},
		{name: "clock before not-before", later: -2 * time.Hour, wantReuse: false},
		{name: "default hosts already covered", hosts: []string{"127.0.0.1", "localhost."}, wantReuse: true},
		{name: "new host", hosts: []string{"api.local"}, wantReuse: false},
		{name: "new IP", hosts: []string{"192.168.1.2"}, wantReuse: false},
		{name: "corrupt certificate", corrupt: SelfSignedCertFile, wantReuse: false},
		{name: "corrupt key", corrupt: SelfSignedKeyFile, wantReuse: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile, err := SelfSigned(dir, nil, fixedClock(testNow), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			first := loadLeaf(t, certFile, keyFile)
			if tc.corrupt != "" {
				writeFile(t, filepath.Join(dir, tc.corrupt), []byte("garbage"))
			}
			later := testNow.Add(tc.later)
			c2, k2, err := SelfSigned(dir, tc.hosts, fixedClock(later), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if c2 != certFile || k2 != keyFile {
				t.Errorf("paths changed: %s, %s", c2, k2)
			}
			second := loadLeaf(t, c2, k2)
			reused := second.SerialNumber.Cmp(first.SerialNumber) == 0
			if reused != tc.wantReuse {
				t.Fatalf("reused = %v, want %v", reused, tc.wantReuse)
			}
			if !reused && !second.NotBefore.Equal(later.Add(-time.Hour)) {
				t.Errorf("new certificate not issued at the injected time: %v", second.NotBefore)
			}
			for _, h := range tc.hosts {
				if err := second.VerifyHostname(strings.TrimSuffix(h, ".")); err != nil {
					t.Errorf("host %s: %v", h, err)
				}
			}
		})
	}
}

func loadLeaf(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

func TestSelfSignedErrors(t *testing.T) {
	blocked := filepath.Join(t.TempDir(), "file")
	writeFile(t, blocked, []byte("x"))
	tests := []struct {
		name  string
		dir   string
		hosts []string
		rand  *failingReader
		want  string
	}{
		{name: "empty host", dir: t.TempDir(), hosts: []string{""}, want: "empty host"},
		{name: "host with port", dir: t.TempDir(), hosts: []string{"example.com:443"}, want: "invalid host"},
		{name: "host with path", dir: t.TempDir(), hosts: []string{"example.com/x"}, want: "invalid host"},
		{name: "state dir is a file", dir: blocked, want: "state directory"},
		{name: "randomness fails", dir: t.TempDir(), rand: &failingReader{}, want: "serial"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r = rand.Reader
			if tc.rand != nil {
				r = tc.rand
			}
			_, _, err := SelfSigned(tc.dir, tc.hosts, fixedClock(testNow), r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

type failingReader struct{}

func (*failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestSplitHostsIPv6Forms(t *testing.T) {
	_, ips, err := splitHosts([]string{"::1", "0:0:0:0:0:0:0:1", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ips) != 2 || !ips[0].Equal(net.IPv6loopback) {
		t.Errorf("ips = %v, want ::1 and 127.0.0.1 once each", ips)
	}
}
