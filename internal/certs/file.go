package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// FileSource serves a certificate and private key read from PEM files and
// replaces them when the files change. The swap is atomic: handshakes after
// it present the new certificate, established connections are untouched, and
// a file that fails to load leaves the previous certificate in place.
type FileSource struct {
	certFile string
	keyFile  string
	log      *slog.Logger

	cert atomic.Pointer[tls.Certificate]

	mu   sync.Mutex // serializes loads and guards seen
	seen fileState
}

// fileState identifies the versions of the certificate and key files last
// loaded or attempted.
type fileState struct {
	cert, key os.FileInfo
}

// NewFileSource loads the certificate chain in certFile and the matching
// private key in keyFile. A missing, unreadable or mismatched file is an
// error naming the file. log receives reload events; nil discards them.
func NewFileSource(certFile, keyFile string, log *slog.Logger) (*FileSource, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls certificate and key files are both required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &FileSource{certFile: certFile, keyFile: keyFile, log: log}
	st, err := s.stat()
	if err != nil {
		return nil, err
	}
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	s.cert.Store(cert)
	s.seen = st
	return s, nil
}

// GetCertificate returns the current certificate; it implements [Source].
func (s *FileSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert.Load(), nil
}

// Leaf returns the parsed leaf of the current certificate.
func (s *FileSource) Leaf() *x509.Certificate { return s.cert.Load().Leaf }

// NotAfter returns the expiry time of the current certificate, for an
// expiry metric or alert.
func (s *FileSource) NotAfter() time.Time { return s.Leaf().NotAfter }

// Reload reads both files again and swaps the certificate in, whether or not
// the files changed (the integrator calls it on SIGHUP). On error the current
// certificate stays in use and the error is returned.
func (s *FileSource) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stat()
	if err != nil {
		return err
	}
	return s.load(st)
}

// Check compares the files' identity (inode, size, modification time) with
// the last version loaded or attempted and reloads when either file changed.
// It reports whether a new certificate was swapped in. A failed load is
// returned once per change of the files, and the current certificate stays
// in use. Watch calls Check on every tick.
func (s *FileSource) Check() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stat()
	if err != nil {
		return false, err
	}
	if sameFile(s.seen.cert, st.cert) && sameFile(s.seen.key, st.key) {
		return false, nil
	}
	if err := s.load(st); err != nil {
		return false, err
	}
	return true, nil
}

// Watch calls Check every interval until ctx is done, logging failures. The
// certificate in use never goes away: a bad file is logged and ignored
// until it changes again.
func (s *FileSource) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	s.watch(ctx, t.C)
}

func (s *FileSource) watch(ctx context.Context, tick <-chan time.Time) {
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		if _, err := s.Check(); err != nil {
			// A missing file is reported on every tick by stat; log each
			// distinct problem once.
			if err.Error() != lastErr {
				s.log.Error("tls certificate reload", "cert_file", s.certFile, "key_file", s.keyFile, "error", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
	}
}

// load reads the files and swaps the certificate in. The caller holds mu.
// st is recorded as seen even when loading fails so a broken file is not
// retried until it changes.
func (s *FileSource) load(st fileState) error {
	s.seen = st
	cert, err := loadKeyPair(s.certFile, s.keyFile)
	if err != nil {
		return err
	}
	old := s.cert.Swap(cert)
	s.log.Info("tls certificate reloaded",
		"cert_file", s.certFile,
		"serial", cert.Leaf.SerialNumber.Text(16),
		"not_after", cert.Leaf.NotAfter,
		"previous_serial", old.Leaf.SerialNumber.Text(16))
	return nil
}

func (s *FileSource) stat() (fileState, error) {
	c, err := os.Stat(s.certFile)
	if err != nil {
		return fileState{}, fmt.Errorf("tls certificate file: %w", err)
	}
	k, err := os.Stat(s.keyFile)
	if err != nil {
		return fileState{}, fmt.Errorf("tls key file: %w", err)
	}
	return fileState{cert: c, key: k}, nil
}

func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// loadKeyPair reads and parses a PEM certificate chain and private key.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read tls certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read tls key file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load tls certificate %s with key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("parse tls certificate %s: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	return &cert, nil
}
