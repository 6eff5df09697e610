package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProductionRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	config := `mode: production
state_dir: ` + dir + `
server:
  listen: 127.0.0.1:0
  http_listen: ""
  admin_listen: 127.0.0.1:0
  verbose: true
upstream: {url: "http://127.0.0.1:9"}
headers:
  hsts: {max_age: 86400s}
cors:
  allowed_origins: ["*", "http://localhost:3000"]
routes:
  - {name: api, path: /api/*}
`
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "serve", "-c", path).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("serve exited with %v; want a non-zero exit\n%s", err, out)
	}
	for _, want := range []string{
		"line 7: field verbose not found",
		"tls: no certificate configured",
		`cors.allowed_origins: "*" allows every site`,
		`cors.allowed_origins: "http://localhost:3000" is a local origin`,
		"headers.hsts.max_age: 24h0m0s is below one year",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "listening") {
		t.Errorf("it started listening:\n%s", out)
	}

	check, err := exec.CommandContext(ctx, binary, "config", "check", "-c", path).CombinedOutput()
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(check), "field verbose not found") {
		t.Errorf("config check: %v\n%s", err, check)
	}
}

func TestCertificateHotReload(t *testing.T) {
	up := startUpstream(t)
	dir := t.TempDir()
	certFile, keyFile, oldCert := certPair(t, dir, false, 1001)
	g := startGateway(t, baseConfig(up.URL, certFile, keyFile, "")+"\n")

	pool := x509.NewCertPool()
	pool.AddCert(oldCert)
	keepAlive := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + g.public + "/public/reload"
	if resp, _ := get(t, keepAlive, url, nil); resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1001 {
		t.Fatalf("first serial %v", resp.TLS.PeerCertificates[0].SerialNumber)
	}

	// Replace the files, then ask for a reload the way an operator does.
	_, _, newCert := certPair(t, dir, false, 2002)
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pool2 := x509.NewCertPool()
	pool2.AddCert(newCert)
	var serial int64
	for range 100 { // the signal is handled asynchronously; poll new handshakes
		conn, err := tls.Dial("tcp", g.public, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		serial = conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
		conn.Close()
		if serial == 2002 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if serial != 2002 {
		t.Fatalf("new handshakes still get serial %d", serial)
	}

	// The open keep-alive connection keeps working, on its old certificate.
	reused := false
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := keepAlive.Do(req)
	if err != nil {
		t.Fatalf("keep-alive connection after reload: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !reused || resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1001 {
		t.Errorf("reused=%v status=%d serial=%v", reused, resp.StatusCode, resp.TLS.PeerCertificates[0].SerialNumber)
	}
	// A client that trusts only the new certificate connects.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool2}}}
	if resp, _ := get(t, c, url, nil); resp.StatusCode != 200 {
		t.Errorf("new certificate: %d", resp.StatusCode)
	}
}

func TestSlowlorisDisconnected(t *testing.T) {
	up := startUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 1)
	cfg := strings.Replace(baseConfig(up.URL, certFile, keyFile, ""), "  shutdown_timeout: 5s", "  shutdown_timeout: 5s\n  read_header_timeout: 1s", 1)
	g := startGateway(t, cfg)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	conn, err := tls.Dial("tcp", g.public, &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn) // returns when the server closes the connection
		close(closed)
	}()
	// One header byte at a time, far slower than any real client, for at most
	// 60 bytes: the server must hang up before the headers are ever complete.
	request := "GET /public/slow HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + strings.Repeat("a", 60)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < len(request); i++ {
		select {
		case <-closed:
			if len(up.seen()) != 0 {
				t.Errorf("the slow request reached the upstream")
			}
			return
		case <-tick.C:
		}
		if _, err := conn.Write([]byte{request[i]}); err != nil {
			return // the server hung up
		}
	}
	t.Fatal("the server kept a connection open while its headers trickled in")
}

func TestDemoCurlLines(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "demo", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0", "--state-dir", t.TempDir(), "--quiet")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel() // SIGINT: the demo shuts down gracefully
		cmd.Wait()
	}()
	var curls []string
	verdict := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "verify ") {
			verdict = line
		}
		if strings.HasPrefix(line, "curl ") {
			curls = append(curls, line)
		}
		if strings.HasPrefix(line, "Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	if len(curls) < 5 {
		t.Fatalf("demo printed %d curl lines", len(curls))
	}
	// The demo verifies itself before it says it is ready.
	if !regexp.MustCompile(`\d+ pass, 0 fail`).MatchString(verdict) {
		t.Errorf("demo self-verification: %q", verdict)
	}
	statusLine := regexp.MustCompile(`(?m)^HTTP/\S+ (\d+)`)
	promised := regexp.MustCompile(`#\s*(\d{3}):`) // "# 401: no key" promises a status
	for _, line := range curls {
		// Run each line exactly as printed (the shell drops the comment),
		// adding only -sS and a status marker when it is one curl call.
		cmdline := line
		if !strings.Contains(line, "|") {
			cmdline = strings.Replace(line, "curl ", "curl -sS -w '\nstatus=%{http_code}\n' ", 1)
		}
		out, err := exec.CommandContext(ctx, "bash", "-c", cmdline).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", line, err, out)
			continue
		}
		s := string(out)
		status := ""
		if m := statusLine.FindStringSubmatch(s); m != nil {
			status = m[1]
		} else if i := strings.LastIndex(s, "status="); i >= 0 {
			status = strings.TrimSpace(s[i+len("status="):])
		}
		switch {
		case strings.Contains(line, "| grep rampart_http"):
			if !strings.Contains(s, "rampart_http_requests_total") {
				t.Errorf("%s: no request metrics:\n%s", line, s)
			}
		case promised.MatchString(line):
			if want := promised.FindStringSubmatch(line)[1]; status != want {
				t.Errorf("%s: status %s, want %s:\n%s", line, status, want, s)
			}
		case strings.Contains(line, "http://"):
			if status != "301" || !strings.Contains(s, "Location: https://localhost:") {
				t.Errorf("%s: want a redirect to HTTPS:\n%s", line, s)
			}
		case strings.Contains(line, "ticket"):
			if status != "200" || !strings.Contains(s, `"ticket":"rwt_`) {
				t.Errorf("%s: want a ticket:\n%s", line, s)
			}
		case strings.Contains(line, "-si"):
			if status != "200" || !strings.Contains(strings.ToLower(s), "strict-transport-security: max-age=31536000") {
				t.Errorf("%s: want 200 with HSTS:\n%s", line, s)
			}
		case status != "200" && status != "201":
			t.Errorf("%s: not a success:\n%s", line, s)
		}
	}
}

// TestConfigReloadAudited: SIGHUP re-reads the config file; a change that
// needs a restart is written to the audit log as config.reloaded naming the
// setting, a broken file is refused and audited, and the running
// configuration stays in force either way.
func TestConfigReloadAudited(t *testing.T) {
	up := startUpstream(t)
	certFile, keyFile, cert := certPair(t, t.TempDir(), false, 11)
	cfg := baseConfig(up.URL, certFile, keyFile, "")
	g := startGateway(t, cfg)
	c := client(cert, nil)

	changed := strings.Replace(cfg, `allowed_origins: ["https://app.example.com"]`, `allowed_origins: ["https://other.example.com"]`, 1)
	if changed == cfg {
		t.Fatal("baseConfig no longer has the origin this test changes")
	}
	hup := func(content string) {
		t.Helper()
		if err := os.WriteFile(g.config, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(g.logs.String(), "certificate reloaded")
		if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for i := 0; strings.Count(g.logs.String(), "certificate reloaded") == before; i++ {
			if i > 200 {
				t.Fatal("SIGHUP was not handled")
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	hup(changed)
	hup("mode: [broken")
	// The running CORS policy is still the one it started with.
	resp, _ := get(t, c, "https://"+g.public+"/public/x", map[string]string{"Origin": "https://app.example.com"})
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("CORS changed without a restart: %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	g.stop(t)
	if err := os.WriteFile(g.config, []byte(changed), 0o600); err != nil { // audit export -c reads it
		t.Fatal(err)
	}

	var reloaded, rejected bool
	for _, ev := range auditExport(t, g) {
		if ev.Type != "config.reloaded" {
			continue
		}
		switch ev.Outcome {
		case "rejected":
			rejected = true
		default:
			pending, _ := ev.Details["restart_required"].([]any)
			for _, p := range pending {
				if p == "cors.allowed_origins" {
					reloaded = true
				}
			}
			if !strings.Contains(fmt.Sprint(ev.Details["changed"]), "other.example.com") {
				t.Errorf("config.reloaded does not show the new value: %v", ev.Details)
			}
		}
	}
	if !reloaded || !rejected {
		t.Errorf("config.reloaded events: changed %v, rejected %v", reloaded, rejected)
	}
}
