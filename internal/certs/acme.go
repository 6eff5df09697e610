package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/net/idna"
)

// LetsEncryptURL is the default ACME directory.
const LetsEncryptURL = autocert.DefaultACMEDirectory

// ACMEOptions configures an [ACMESource].
type ACMEOptions struct {
	// Hosts are the DNS names certificates are obtained for; handshakes for
	// any other name are refused before the CA is contacted. Required.
	Hosts []string
	// Email is the contact address registered with the CA (optional).
	Email string
	// CacheDir stores the account key and certificates across restarts so
	// a restart does not hit the CA's rate limits. Required; created with
	// mode 0700 when missing.
	CacheDir string
	// DirectoryURL is the ACME directory; default [LetsEncryptURL].
	DirectoryURL string
	// CARootsFile is a PEM file of CA certificates trusted for the HTTPS
	// connection to the ACME directory, replacing the system roots (for a
	// private CA such as step-ca or Pebble). Empty means the system roots.
	CARootsFile string
	// HTTPClient, when set, is used for all ACME requests as is, and
	// CARootsFile and HTTPTimeout are ignored.
	HTTPClient *http.Client
	// HTTPTimeout bounds each ACME HTTP request; default 30s.
	HTTPTimeout time.Duration
	// RenewBefore is how long before expiry certificates are renewed;
	// zero means autocert's default (30 days or a third of the lifetime).
	RenewBefore time.Duration
	// DisableTLSALPN stops answering tls-alpn-01 challenges, leaving
	// http-01 through HTTPHandler (for a TLS port the CA cannot reach
	// directly, such as behind a TLS-terminating load balancer).
	DisableTLSALPN bool
	// Logger receives certificate failures; nil discards them.
	Logger *slog.Logger
}

// ACMESource obtains and renews certificates from an ACME CA (RFC 8555)
// with golang.org/x/crypto/acme/autocert. It answers tls-alpn-01 challenges
// through the TLS listener (via [ServerConfig]) and http-01 challenges
// through [ACMESource.HTTPHandler]. Configuring it agrees to the CA's terms
// of service.
type ACMESource struct {
	m        *autocert.Manager
	hosts    []string
	noALPN   bool
	log      *slog.Logger
	notAfter atomic.Int64 // unix nanoseconds of the last certificate served
}

// NewACMESource validates opts and returns a source; no request reaches the
// CA until the first handshake for one of the hosts.
func NewACMESource(opts ACMEOptions) (*ACMESource, error) {
	var errs []error
	if len(opts.Hosts) == 0 {
		errs = append(errs, errors.New("acme: at least one host is required"))
	}
	hosts := make([]string, 0, len(opts.Hosts))
	for _, h := range opts.Hosts {
		n, err := acmeHostName(h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		hosts = append(hosts, n)
	}
	if opts.CacheDir == "" {
		errs = append(errs, errors.New("acme: cache directory is required"))
	}
	dir := opts.DirectoryURL
	if dir == "" {
		dir = LetsEncryptURL
	}
	if !strings.HasPrefix(dir, "https://") {
		errs = append(errs, fmt.Errorf("acme: directory URL %q must be https", dir))
	}
	client := opts.HTTPClient
	if client == nil {
		c, err := acmeHTTPClient(opts.CARootsFile, opts.HTTPTimeout)
		if err != nil {
			errs = append(errs, err)
		}
		client = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("acme: create cache directory: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &ACMESource{hosts: hosts, noALPN: opts.DisableTLSALPN, log: log}
	s.m = &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       autocert.DirCache(opts.CacheDir),
		HostPolicy:  s.hostPolicy,
		RenewBefore: opts.RenewBefore,
		Email:       opts.Email,
		Client: &acme.Client{
			DirectoryURL: dir,
			HTTPClient:   client,
			UserAgent:    "rampart",
		},
	}
	return s, nil
}

// acmeHostName validates and normalizes a configured ACME host name.
func acmeHostName(h string) (string, error) {
	if strings.Contains(h, "*") {
		return "", fmt.Errorf("acme: wildcard host %q needs dns-01, which is not supported", h)
	}
	n, err := idna.Lookup.ToASCII(strings.TrimSuffix(strings.TrimSpace(h), "."))
	if err != nil || n == "" {
		return "", fmt.Errorf("acme: invalid host %q", h)
	}
	if net.ParseIP(n) != nil {
		return "", fmt.Errorf("acme: host %q is an IP address; ACME needs a DNS name", h)
	}
	if !strings.Contains(n, ".") {
		return "", fmt.Errorf("acme: host %q needs at least two labels", h)
	}
	return n, nil
}

func acmeHTTPClient(rootsFile string, timeout time.Duration) (*http.Client, error) {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if rootsFile != "" {
		pemData, err := os.ReadFile(rootsFile)
		if err != nil {
			return nil, fmt.Errorf("acme: read CA roots: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("acme: CA roots %s: no PEM certificates", rootsFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// hostPolicy allows the configured hosts. The http-01 handler passes the
// request's Host header, which may carry a port.
func (s *ACMESource) hostPolicy(_ context.Context, host string) error {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if !slices.Contains(s.hosts, host) {
		return fmt.Errorf("acme: host %q not configured", host)
	}
	return nil
}

// GetCertificate returns the certificate for the handshake's server name,
// obtaining it from the CA on first use (the handshake waits meanwhile), and
// answers tls-alpn-01 challenges. A handshake without a server name gets the
// first host's certificate. It implements [Source].
func (s *ACMESource) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	// A tls-alpn-01 validation offers exactly "acme-tls/1" (RFC 8737).
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		if s.noALPN {
			return nil, errors.New("acme: tls-alpn-01 disabled")
		}
		return s.m.GetCertificate(hello)
	}
	if hello.ServerName == "" {
		h := *hello
		h.ServerName = s.hosts[0]
		hello = &h
	}
	cert, err := s.m.GetCertificate(hello)
	if err != nil {
		if s.hostPolicy(context.Background(), hello.ServerName) == nil {
			s.log.Error("acme certificate", "host", hello.ServerName, "error", err)
		}
		return nil, err
	}
	if cert.Leaf != nil {
		s.notAfter.Store(cert.Leaf.NotAfter.UnixNano())
	}
	return cert, nil
}

// ALPNProtocols returns "acme-tls/1" unless tls-alpn-01 is disabled;
// [ServerConfig] adds it to the listener's protocols.
func (s *ACMESource) ALPNProtocols() []string {
	if s.noALPN {
		return nil
	}
	return []string{acme.ALPNProto}
}

// HTTPHandler answers http-01 challenges under /.well-known/acme-challenge/
// for the configured hosts and passes every other request to fallback (the
// HTTP listener's redirect to HTTPS). Calling it enables http-01.
func (s *ACMESource) HTTPHandler(fallback http.Handler) http.Handler {
	if fallback == nil {
		fallback = http.NotFoundHandler()
	}
	return s.m.HTTPHandler(fallback)
}

// NotAfter returns the expiry of the certificate most recently served, or
// the zero time before the first handshake.
func (s *ACMESource) NotAfter() time.Time {
	n := s.notAfter.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
