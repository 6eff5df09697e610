package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	// SelfSignedCertFile and SelfSignedKeyFile are the file names
	// SelfSigned writes in its state directory.
	SelfSignedCertFile = "selfsigned-cert.pem"
	SelfSignedKeyFile  = "selfsigned-key.pem"

	selfSignedValidity = 90 * 24 * time.Hour
	// selfSignedMinRemaining is how long an existing certificate must stay
	// valid to be reused.
	selfSignedMinRemaining = 7 * 24 * time.Hour
)

// defaultSelfSignedHosts are always in a development certificate.
var defaultSelfSignedHosts = []string{"localhost", "127.0.0.1", "::1"}

// SelfSigned makes sure stateDir holds a self-signed ECDSA P-256 certificate
// for development, valid for localhost, 127.0.0.1, ::1 and the extra hosts
// (DNS names or IP addresses), and returns the paths of the certificate and
// its private key. The key file is written with mode 0600. An existing
// certificate is reused when it covers every host, matches its key and stays
// valid for more than seven days after now; otherwise a new one valid for 90
// days replaces it. rand supplies the serial number.
//
// Clients trust it by trusting the certificate file itself (for example
// curl --cacert <certFile>).
func SelfSigned(stateDir string, hosts []string, now func() time.Time, rand io.Reader) (certFile, keyFile string, err error) {
	names, ips, err := splitHosts(append(slices.Clone(defaultSelfSignedHosts), hosts...))
	if err != nil {
		return "", "", err
	}
	certFile = filepath.Join(stateDir, SelfSignedCertFile)
	keyFile = filepath.Join(stateDir, SelfSignedKeyFile)
	t := now()
	if reusable(certFile, keyFile, names, ips, t) {
		return certFile, keyFile, nil
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", "", fmt.Errorf("create state directory: %w", err)
	}
	certPEM, keyPEM, err := newSelfSigned(names, ips, t, rand)
	if err != nil {
		return "", "", err
	}
	// Key first: a certificate never sits next to a key it does not match
	// for longer than the two renames.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func splitHosts(hosts []string) (names []string, ips []net.IP, err error) {
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, nil, errors.New("self-signed certificate: empty host name")
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if strings.ContainsAny(h, " /\\:@") {
			return nil, nil, fmt.Errorf("self-signed certificate: invalid host name %q", h)
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	return names, ips, nil
}

// reusable reports whether the existing files hold a certificate covering
// names and ips, matching its key, valid at now and for the next seven days.
func reusable(certFile, keyFile string, names []string, ips []net.IP, now time.Time) bool {
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return false
	}
	leaf := cert.Leaf
	if now.Before(leaf.NotBefore) || now.Add(selfSignedMinRemaining).After(leaf.NotAfter) {
		return false
	}
	for _, n := range names {
		if !slices.Contains(leaf.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func newSelfSigned(names []string, ips []net.IP, now time.Time, rand io.Reader) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return nil, nil, fmt.Errorf("generate self-signed key: %w", err)
	}
	serial, err := randomSerial(rand)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"rampart development"}, CommonName: names[0]},
		// Backdated an hour so a client with a slightly late clock accepts it.
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(selfSignedValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// Not a CA: trusting this certificate (curl --cacert, Go RootCAs)
		// trusts exactly this server and nothing it could sign.
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              names,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode self-signed key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// randomSerial returns a positive 128-bit serial number.
func randomSerial(rand io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	b[0] &= 0x7f
	b[0] |= 0x40 // fixed length, never zero
	return new(big.Int).SetBytes(b), nil
}

// writeFileAtomic writes data to a temporary file in the target directory
// with mode perm and renames it over path.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := io.Copy(f, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
