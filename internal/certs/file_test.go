package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFileSourceHotReload shows the acceptance behavior: after the files
// are replaced and the poll step runs, a new handshake presents the new
// certificate while a keep-alive connection opened before keeps serving.
func TestFileSourceHotReload(t *testing.T) {
	dir := t.TempDir()
	old := newTestCert(t, dir, "old", "ecdsa", 1001)
	next := newTestCert(t, dir, "next", "ecdsa", 2002)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFile(t, certFile, old.certPEM)
	writeFile(t, keyFile, old.keyPEM)

	var logs bytes.Buffer
	src, err := NewFileSource(certFile, keyFile, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, ServerConfig(src), okHandler)
	roots := rootPool(old.leaf, next.leaf)

	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			writeFile(t, certFile, old.certPEM)
			writeFile(t, keyFile, old.keyPEM)
			if err := src.Reload(); err != nil {
				t.Fatal(err)
			}
			keepAlive := newClient(roots, proto)
			resp := get(t, keepAlive, addr)
			if got := serial(resp); got != "1001" {
				t.Fatalf("first request served serial %s, want 1001", got)
			}

			// Replace both files the way deploy tools do: write aside, rename over.
			replaceFile(t, certFile, next.certPEM)
			replaceFile(t, keyFile, next.keyPEM)
			changed, err := src.Check()
			if err != nil || !changed {
				t.Fatalf("Check() = %v, %v; want true, nil", changed, err)
			}

			fresh := newClient(roots, proto)
			if got := serial(get(t, fresh, addr)); got != "2002" {
				t.Errorf("new handshake served serial %s, want 2002", got)
			}

			var reused bool
			trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
			resp = getTrace(t, keepAlive, addr, trace)
			if !reused {
				t.Error("keep-alive connection was not reused")
			}
			if got := serial(resp); got != "1001" {
				t.Errorf("keep-alive connection shows serial %s, want the original 1001", got)
			}
			if resp.Proto != map[string]string{"h2": "HTTP/2.0", "http/1.1": "HTTP/1.1"}[proto] {
				t.Errorf("proto = %s", resp.Proto)
			}
		})
	}
	if !strings.Contains(logs.String(), `"msg":"tls certificate reloaded"`) {
		t.Errorf("no reload log line in %s", logs.String())
	}
}

// newClient returns a client that trusts roots and speaks only proto
// ("http/1.1" or "h2"), keeping its connection alive between requests.
func newClient(roots *x509.CertPool, proto string) *http.Client {
	var p http.Protocols
	if proto == "h2" {
		p.SetHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"},
		Protocols:       &p,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func get(t *testing.T, c *http.Client, addr string) *http.Response {
	t.Helper()
	return getTrace(t, c, addr, nil)
}

func getTrace(t *testing.T, c *http.Client, addr string, trace *httptrace.ClientTrace) *http.Response {
	t.Helper()
	ctx := context.Background()
	if trace != nil {
		ctx = httptrace.WithClientTrace(ctx, trace)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
	return resp
}

func serial(resp *http.Response) string {
	return resp.TLS.PeerCertificates[0].SerialNumber.String()
}

// replaceFile writes data next to path and renames it over path.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestNewFileSourceErrors(t *testing.T) {
	dir := t.TempDir()
	a := newTestCert(t, dir, "a", "ecdsa", 1)
	b := newTestCert(t, dir, "b", "rsa", 2)
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, []byte("not a certificate"))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name      string
		cert, key string
		want      []string // substrings of the error
	}{
		{"missing cert", missing, a.keyFile, []string{"certificate file", missing}},
		{"missing key", a.certFile, missing, []string{"key file", missing}},
		{"garbage cert", garbage, a.keyFile, []string{garbage, "certificate"}},
		{"garbage key", a.certFile, garbage, []string{garbage, "key"}},
		{"key of another certificate", a.certFile, b.keyFile, []string{a.certFile, b.keyFile}},
		{"key given as certificate", a.keyFile, a.certFile, []string{a.keyFile}},
		{"empty names", "", "", []string{"required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewFileSource(tc.cert, tc.key, nil)
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
}

func TestFileSourceCheck(t *testing.T) {
	type env struct {
		src               *FileSource
		certFile, keyFile string
		first, second     testCert
	}
	setup := func(t *testing.T) env {
		dir := t.TempDir()
		e := env{
			first:    newTestCert(t, dir, "first", "ecdsa", 11),
			second:   newTestCert(t, dir, "second", "ecdsa", 22),
			certFile: filepath.Join(dir, "tls.crt"),
			keyFile:  filepath.Join(dir, "tls.key"),
		}
		writeFile(t, e.certFile, e.first.certPEM)
		writeFile(t, e.keyFile, e.first.keyPEM)
		src, err := NewFileSource(e.certFile, e.keyFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.src = src
		return e
	}
	current := func(t *testing.T, src *FileSource) string {
		t.Helper()
		c, err := src.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil || c == nil {
			t.Fatalf("GetCertificate = %v, %v", c, err)
		}
		return c.Leaf.SerialNumber.String()
	}

	t.Run("unchanged files", func(t *testing.T) {
		e := setup(t)
		for range 2 {
			if changed, err := e.src.Check(); changed || err != nil {
				t.Fatalf("Check() = %v, %v; want false, nil", changed, err)
			}
		}
		if got := current(t, e.src); got != "11" {
			t.Errorf("serial %s", got)
		}
		if !e.src.NotAfter().Equal(e.first.leaf.NotAfter) {
			t.Errorf("NotAfter = %v, want %v", e.src.NotAfter(), e.first.leaf.NotAfter)
		}
	})

	t.Run("in-place rewrite with new mtime", func(t *testing.T) {
		e := setup(t)
		writeFile(t, e.certFile, e.second.certPEM)
		writeFile(t, e.keyFile, e.second.keyPEM)
		// Make sure the modification time differs whatever the file
		// system's timestamp granularity.
		later := e.first.leaf.NotBefore.Add(time.Minute)
		for _, f := range []string{e.certFile, e.keyFile} {
			if err := os.Chtimes(f, later, later); err != nil {
				t.Fatal(err)
			}
		}
		if changed, err := e.src.Check(); !changed || err != nil {
			t.Fatalf("Check() = %v, %v; want true, nil", changed, err)
		}
		if got := current(t, e.src); got != "22" {
			t.Errorf("serial %s, want 22", got)
		}
	})

	t.Run("bad new certificate keeps the old one until fixed", func(t *testing.T) {
		e := setup(t)
		replaceFile(t, e.certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"))
		changed, err := e.src.Check()
		if changed || err == nil || !strings.Contains(err.Error(), e.certFile) {
			t.Fatalf("Check() = %v, %v; want false and an error naming %s", changed, err, e.certFile)
		}
		if got := current(t, e.src); got != "11" {
			t.Errorf("serial %s, want the old 11", got)
		}
		// Not retried (nor reported again) until the files change.
		if changed, err := e.src.Check(); changed || err != nil {
			t.Fatalf("second Check() = %v, %v; want false, nil", changed, err)
		}
		replaceFile(t, e.certFile, e.second.certPEM)
		// Certificate and key do not match yet: still the old one.
		if changed, err := e.src.Check(); changed || err == nil {
			t.Fatalf("Check() with mismatched key = %v, %v; want false and an error", changed, err)
		}
		if got := current(t, e.src); got != "11" {
			t.Errorf("serial %s, want the old 11", got)
		}
		replaceFile(t, e.keyFile, e.second.keyPEM)
		if changed, err := e.src.Check(); !changed || err != nil {
			t.Fatalf("Check() = %v, %v; want true, nil", changed, err)
		}
		if got := current(t, e.src); got != "22" {
			t.Errorf("serial %s, want 22", got)
		}
	})

	t.Run("removed key file keeps the certificate", func(t *testing.T) {
		e := setup(t)
		if err := os.Remove(e.keyFile); err != nil {
			t.Fatal(err)
		}
		if _, err := e.src.Check(); err == nil || !strings.Contains(err.Error(), e.keyFile) {
			t.Fatalf("Check() error = %v; want one naming %s", err, e.keyFile)
		}
		if err := e.src.Reload(); err == nil {
			t.Fatal("Reload() succeeded without a key file")
		}
		if got := current(t, e.src); got != "11" {
			t.Errorf("serial %s, want the old 11", got)
		}
	})

	t.Run("reload picks up a change polling cannot see", func(t *testing.T) {
		e := setup(t)
		info, err := os.Stat(e.certFile)
		if err != nil {
			t.Fatal(err)
		}
		keyInfo, err := os.Stat(e.keyFile)
		if err != nil {
			t.Fatal(err)
		}
		// ECDSA signatures vary in length; find a certificate whose PEM
		// files have exactly the sizes of the current ones.
		var third testCert
		for i := range 100 {
			third = newTestCert(t, t.TempDir(), "third", "ecdsa", 33)
			if len(third.certPEM) == len(e.first.certPEM) && len(third.keyPEM) == len(e.first.keyPEM) {
				break
			}
			if i == 99 {
				t.Fatal("no same-size certificate in 100 attempts")
			}
		}
		// Same inode, same size, same modification time: invisible to Check.
		writeFile(t, e.certFile, third.certPEM)
		writeFile(t, e.keyFile, third.keyPEM)
		if err := os.Chtimes(e.certFile, info.ModTime(), info.ModTime()); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(e.keyFile, keyInfo.ModTime(), keyInfo.ModTime()); err != nil {
			t.Fatal(err)
		}
		if changed, err := e.src.Check(); changed || err != nil {
			t.Fatalf("Check() = %v, %v; want false, nil", changed, err)
		}
		if err := e.src.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := current(t, e.src); got != "33" {
			t.Errorf("serial %s, want 33", got)
		}
	})
}

// TestFileSourceWatch drives the watch loop with a hand-fed tick channel.
// An unbuffered send only completes once the loop is back in its select,
// so after the next send the previous Check has run.
func TestFileSourceWatch(t *testing.T) {
	dir := t.TempDir()
	first := newTestCert(t, dir, "first", "ecdsa", 1)
	second := newTestCert(t, dir, "second", "ecdsa", 2)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFile(t, certFile, first.certPEM)
	writeFile(t, keyFile, first.keyPEM)
	logs := &syncBuffer{}
	src, err := NewFileSource(certFile, keyFile, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan time.Time)
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.watch(ctx, tick)
	}()
	// step returns once the Check of its first tick has finished; the
	// second tick's Check may still be running.
	step := func() {
		tick <- time.Time{}
		tick <- time.Time{}
	}

	// While the key is missing every Check fails the same way; the
	// failure is logged once.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	step()
	step()
	// Every state a concurrent Check can see here is either "key missing"
	// or the complete new pair.
	replaceFile(t, certFile, second.certPEM)
	replaceFile(t, keyFile, second.keyPEM)
	step()
	cancel()
	<-done // the loop has exited: no Check is running

	if got := src.Leaf().SerialNumber.String(); got != "2" {
		t.Errorf("serial after watch = %s, want 2", got)
	}
	out := logs.String()
	if n := strings.Count(out, `"msg":"tls certificate reload"`); n != 1 {
		t.Errorf("missing key logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, `"msg":"tls certificate reloaded"`) {
		t.Errorf("no reload line:\n%s", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
