package certs

import (
	"crypto/tls"
	"slices"
)

// Source provides the certificate presented in a TLS handshake.
// [FileSource] and [ACMESource] implement it.
type Source interface {
	GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
}

// alpnSource is implemented by sources that need extra ALPN protocols
// negotiated on the listener, such as "acme-tls/1" for ACME tls-alpn-01.
type alpnSource interface {
	ALPNProtocols() []string
}

// tls12CipherSuites are the TLS 1.2 suites rampart accepts: ephemeral ECDH
// key exchange (forward secrecy) with an AEAD cipher. RSA key exchange, CBC
// and 3DES are absent. TLS 1.3 suites are not configurable and all AEAD.
var tls12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// curvePreferences are the key exchange groups rampart offers. X25519 and
// P-256 are the classical groups; the X25519MLKEM768 hybrid (TLS 1.3 only)
// keeps X25519 and adds post-quantum protection, so it comes first, as in
// Go's defaults.
var curvePreferences = []tls.CurveID{
	tls.X25519MLKEM768,
	tls.X25519,
	tls.CurveP256,
}

// CipherSuites returns the TLS 1.2 cipher suites [ServerConfig] allows.
func CipherSuites() []uint16 { return slices.Clone(tls12CipherSuites) }

// ServerConfig returns the hardened TLS configuration for rampart's HTTPS
// listener, serving certificates from src: TLS 1.2 minimum (Go negotiates
// TLS 1.3 whenever the client supports it), TLS 1.2 suites limited to ECDHE
// with AES-GCM or ChaCha20-Poly1305, X25519 and P-256 key exchange, and ALPN
// for HTTP/2 and HTTP/1.1 (plus "acme-tls/1" when src answers ACME
// tls-alpn-01 challenges).
//
// The returned config is safe to use with http.Server.ServeTLS with empty
// certificate and key file names.
func ServerConfig(src Source) *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if a, ok := src.(alpnSource); ok {
		for _, p := range a.ALPNProtocols() {
			if !slices.Contains(protos, p) {
				protos = append(protos, p)
			}
		}
	}
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     CipherSuites(),
		CurvePreferences: slices.Clone(curvePreferences),
		NextProtos:       protos,
		GetCertificate:   src.GetCertificate,
	}
}
