package certs

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
)

func TestServerConfig(t *testing.T) {
	src := staticSource{}
	cfg := ServerConfig(src)
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
	}
	if cfg.MaxVersion != 0 {
		t.Errorf("MaxVersion = %x, want 0 (TLS 1.3)", cfg.MaxVersion)
	}
	for _, id := range cfg.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
			t.Errorf("cipher suite %s is not ECDHE with AEAD", name)
		}
	}
	if len(cfg.CipherSuites) != 6 {
		t.Errorf("got %d cipher suites, want 6", len(cfg.CipherSuites))
	}
	for _, c := range cfg.CurvePreferences {
		if c != tls.X25519 && c != tls.CurveP256 && c != tls.X25519MLKEM768 {
			t.Errorf("unexpected curve %v", c)
		}
	}
	if !slices.Equal(cfg.NextProtos, []string{"h2", "http/1.1"}) {
		t.Errorf("NextProtos = %q", cfg.NextProtos)
	}
	if cfg.GetCertificate == nil {
		t.Error("GetCertificate not set")
	}

	acme := ServerConfig(alpnStatic{protos: []string{"acme-tls/1", "h2"}})
	if !slices.Equal(acme.NextProtos, []string{"h2", "http/1.1", "acme-tls/1"}) {
		t.Errorf("NextProtos with ACME = %q", acme.NextProtos)
	}
	// Configs are independent: mutating one does not leak into the next.
	cfg.CipherSuites[0] = 0
	if ServerConfig(src).CipherSuites[0] == 0 {
		t.Error("ServerConfig shares its cipher suite slice")
	}
}

type staticSource struct{ cert *tls.Certificate }

func (s staticSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert, nil
}

type alpnStatic struct {
	staticSource
	protos []string
}

func (a alpnStatic) ALPNProtocols() []string { return a.protos }

// TestHandshakePolicy runs real handshakes against a server using
// ServerConfig and a FileSource. Every client the policy refuses is also run
// against a permissive server with the same certificate, to show that the
// refusal comes from rampart's policy and not from the client.
func TestHandshakePolicy(t *testing.T) {
	dir := t.TempDir()
	servers := map[string]testCert{
		"rsa":   newTestCert(t, dir, "rsa", "rsa", 1),
		"ecdsa": newTestCert(t, dir, "ecdsa", "ecdsa", 2),
	}
	type addrs struct{ hardened, permissive string }
	listen := map[string]addrs{}
	for name, c := range servers {
		src, err := NewFileSource(c.certFile, c.keyFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		permissive := &tls.Config{
			MinVersion:     tls.VersionTLS10,
			CipherSuites:   allCipherSuites(),
			GetCertificate: src.GetCertificate,
		}
		listen[name] = addrs{
			hardened:   serveTLS(t, ServerConfig(src), okHandler),
			permissive: serveTLS(t, permissive, okHandler),
		}
	}

	tests := []struct {
		name     string
		server   string
		min, max uint16
		suites   []uint16
		curves   []tls.CurveID
		protos   []string
		// wantVersion is zero when the hardened server must refuse.
		wantVersion uint16
		wantSuite   uint16
		wantProto   string
	}{
		{name: "tls1.0 refused", server: "rsa", min: tls.VersionTLS10, max: tls.VersionTLS10, suites: allCipherSuites()},
		{name: "tls1.1 refused", server: "rsa", min: tls.VersionTLS11, max: tls.VersionTLS11, suites: allCipherSuites()},
		{name: "tls1.1 ecdsa refused", server: "ecdsa", min: tls.VersionTLS10, max: tls.VersionTLS11, suites: allCipherSuites()},
		{name: "rsa key exchange aes128-gcm refused", server: "rsa", max: tls.VersionTLS12,
			suites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}},
		{name: "rsa key exchange only refused", server: "rsa", max: tls.VersionTLS12,
			suites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA}},
		{name: "ecdhe-rsa cbc only refused", server: "rsa", max: tls.VersionTLS12,
			suites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256}},
		{name: "ecdhe-ecdsa cbc only refused", server: "ecdsa", max: tls.VersionTLS12,
			suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}},
		{name: "3des refused", server: "rsa", max: tls.VersionTLS12,
			suites: []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA}},
		{name: "p-384 only refused", server: "ecdsa", max: tls.VersionTLS12,
			suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, curves: []tls.CurveID{tls.CurveP384}},
		{name: "tls1.2 ecdhe-rsa aes-gcm", server: "rsa", max: tls.VersionTLS12,
			suites:      []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
			wantVersion: tls.VersionTLS12, wantSuite: tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		{name: "tls1.2 ecdhe-rsa chacha20", server: "rsa", max: tls.VersionTLS12,
			suites:      []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256},
			wantVersion: tls.VersionTLS12, wantSuite: tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256},
		{name: "tls1.2 ecdhe-ecdsa aes256-gcm p-256", server: "ecdsa", max: tls.VersionTLS12,
			suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, curves: []tls.CurveID{tls.CurveP256},
			wantVersion: tls.VersionTLS12, wantSuite: tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
		{name: "tls1.2 mixed offer picks ecdhe aead", server: "rsa", max: tls.VersionTLS12,
			suites:      []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384},
			wantVersion: tls.VersionTLS12, wantSuite: tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384},
		{name: "tls1.3 default client rsa", server: "rsa", protos: []string{"h2", "http/1.1"},
			wantVersion: tls.VersionTLS13, wantProto: "h2"},
		{name: "tls1.3 default client ecdsa", server: "ecdsa", protos: []string{"http/1.1"},
			wantVersion: tls.VersionTLS13, wantProto: "http/1.1"},
		{name: "tls1.3 x25519 only", server: "ecdsa", min: tls.VersionTLS13, curves: []tls.CurveID{tls.X25519},
			wantVersion: tls.VersionTLS13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := servers[tc.server]
			client := &tls.Config{
				ServerName:       "localhost",
				RootCAs:          rootPool(c.leaf),
				MinVersion:       tc.min,
				MaxVersion:       tc.max,
				CipherSuites:     tc.suites,
				CurvePreferences: tc.curves,
				NextProtos:       tc.protos,
			}
			st, err := handshake(t, listen[tc.server].hardened, client)
			if tc.wantVersion == 0 {
				if err == nil {
					t.Fatalf("hardened server accepted version %s suite %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
				}
				if _, err := handshake(t, listen[tc.server].permissive, client); err != nil {
					t.Fatalf("control: permissive server refused the same client: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if st.Version != tc.wantVersion {
				t.Errorf("version = %s, want %s", tls.VersionName(st.Version), tls.VersionName(tc.wantVersion))
			}
			if tc.wantSuite != 0 && st.CipherSuite != tc.wantSuite {
				t.Errorf("suite = %s, want %s", tls.CipherSuiteName(st.CipherSuite), tls.CipherSuiteName(tc.wantSuite))
			}
			if st.NegotiatedProtocol != tc.wantProto {
				t.Errorf("ALPN = %q, want %q", st.NegotiatedProtocol, tc.wantProto)
			}
			if got := st.PeerCertificates[0].SerialNumber; got.Cmp(c.leaf.SerialNumber) != 0 {
				t.Errorf("serial = %v, want %v", got, c.leaf.SerialNumber)
			}
		})
	}
}

func allCipherSuites() []uint16 {
	var ids []uint16
	for _, s := range tls.CipherSuites() {
		ids = append(ids, s.ID)
	}
	for _, s := range tls.InsecureCipherSuites() {
		ids = append(ids, s.ID)
	}
	return ids
}
