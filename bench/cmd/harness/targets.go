package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The four security headers every target sets, with the values rampart
// uses by default.
var securityHeaders = [][2]string{
	{"Strict-Transport-Security", "max-age=31536000; includeSubDomains"},
	{"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
	{"X-Frame-Options", "DENY"},
	{"X-Content-Type-Options", "nosniff"},
}

// target is one system under test.
type target struct {
	name, desc string
	// extra targets run in full runs only (they answer tuning questions,
	// not the comparison itself).
	extra bool
	// optional targets are skipped with a message instead of failing the
	// run when they cannot start or do not behave as configured.
	optional bool
	headers  bool // answers carry the four security headers
	auth     bool // a request without the API key must get 401
	post     bool // measured with POSTs (audited) instead of GETs
	start    func(ctx context.Context, e *env) (started, error)
}

// started is a running target.
type started struct {
	pid    int
	url    string
	config string
	prof   *profSource // nil: this target cannot be profiled
	key    string      // API key to send; empty: the run's shared key
}

// profSource says how to take a CPU profile of a target: load url while
// fetching a profile from pprof, then symbolize it with bin.
type profSource struct {
	url, pprof, bin, key string
}

// env is the state shared by every target of one run.
type env struct {
	dir, binDir         string
	proxyCPUs, loadCPUs string
	conns, threads      int
	apiKey              string
	certFile, keyFile   string
	pemFile             string // certificate + key, for HAProxy
	upstream            string // plain HTTP host:port
	upstreamTLS         string // HTTPS host:port for the direct target
	upstreamPID         int
	redisAddr           string
	pgURL               string
	profile             bool // start what -profile needs (pprof listeners, rampart twins)
	procs               []*exec.Cmd
}

func (e *env) bin(name string) string { return filepath.Join(e.binDir, name) }

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// spawn starts a server pinned to the proxy CPUs, its output going to
// name.log in the work directory.
func (e *env) spawn(name string, extraEnv []string, prog string, args ...string) (int, error) {
	return e.spawnAs(name, nil, extraEnv, prog, args...)
}

// spawnAs is spawn with another user's credentials (PostgreSQL refuses
// to run as root).
func (e *env) spawnAs(name string, cred *syscall.Credential, extraEnv []string, prog string, args ...string) (int, error) {
	logf, err := os.Create(filepath.Join(e.dir, name+".log"))
	if err != nil {
		return 0, err
	}
	cmd := exec.Command("taskset", append([]string{"-c", e.proxyCPUs, prog}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), extraEnv...)
	// Own process group, so a Ctrl-C on the harness reaches us first and
	// we stop the servers in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	e.procs = append(e.procs, cmd)
	go func() { _ = cmd.Wait(); logf.Close() }()
	return cmd.Process.Pid, nil
}

// stopAll stops every process this run started: SIGTERM, then SIGKILL for
// what is left after a few seconds.
func (e *env) stopAll() {
	for _, c := range e.procs {
		if c.Process != nil {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range e.procs {
		for c.ProcessState == nil && time.Now().Before(deadline) && alive(c.Process.Pid) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(c.Process.Pid) {
			_ = c.Process.Kill()
		}
	}
}

func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// waitListening waits until addr accepts connections or the process died.
func waitListening(ctx context.Context, addr string, pid int, logFile string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if !alive(pid) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	tail, _ := os.ReadFile(logFile)
	if len(tail) > 2000 {
		tail = tail[len(tail)-2000:]
	}
	return fmt.Errorf("%s is not listening: %s", addr, strings.TrimSpace(string(tail)))
}

func (e *env) startAndWait(ctx context.Context, name string, extraEnv []string, addr, prog string, args ...string) (int, error) {
	pid, err := e.spawn(name, extraEnv, prog, args...)
	if err != nil {
		return 0, err
	}
	return pid, waitListening(ctx, addr, pid, filepath.Join(e.dir, name+".log"))
}

func (e *env) write(name, content string) (string, error) {
	p := filepath.Join(e.dir, name)
	return p, os.WriteFile(p, []byte(content), 0o600)
}

// makeCert writes one ECDSA P-256 self-signed certificate for localhost,
// 127.0.0.1 and ::1 that every target serves.
func (e *env) makeCert() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if e.certFile, err = e.write("cert.pem", string(certPEM)); err != nil {
		return err
	}
	if e.keyFile, err = e.write("key.pem", string(keyPEM)); err != nil {
		return err
	}
	e.pemFile, err = e.write("haproxy.pem", string(certPEM)+string(keyPEM))
	return err
}

// startUpstream starts the shared upstream on the proxy CPUs.
func (e *env) startUpstream(ctx context.Context) error {
	var err error
	if e.upstream, err = freeAddr(); err != nil {
		return err
	}
	if e.upstreamTLS, err = freeAddr(); err != nil {
		return err
	}
	pid, err := e.startAndWait(ctx, "upstream", nil, e.upstream, e.bin("upstream"),
		"-listen", e.upstream, "-tls-listen", e.upstreamTLS, "-cert", e.certFile, "-key", e.keyFile)
	if err != nil {
		return err
	}
	e.upstreamPID = pid
	return waitListening(ctx, e.upstreamTLS, pid, filepath.Join(e.dir, "upstream.log"))
}

// startRedis starts a throwaway redis-server for the Redis-backed target.
func (e *env) startRedis(ctx context.Context) error {
	if e.redisAddr != "" {
		return nil
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	dir := filepath.Join(e.dir, "redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := e.startAndWait(ctx, "redis", nil, addr, "redis-server",
		"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", dir); err != nil {
		return err
	}
	e.redisAddr = addr
	return nil
}

// startPostgres initialises and starts a throwaway PostgreSQL for the
// PostgreSQL-store target, as the postgres user when run as root.
func (e *env) startPostgres(ctx context.Context) error {
	if e.pgURL != "" {
		return nil
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		return errors.New("PostgreSQL is not installed (apt-get install postgresql)")
	}
	slices.Sort(bins)
	binDir := filepath.Dir(bins[len(bins)-1])
	var cred *syscall.Credential
	dir := filepath.Join(e.dir, "pg")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("PostgreSQL cannot run as root and there is no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
		// The postgres user must be able to reach its directory.
		for d := e.dir; d != "/" && d != "."; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
				_ = os.Chmod(d, fi.Mode().Perm()|0o011)
			}
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), "-D", dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(addr)
	pid, err := e.spawnAs("postgres", cred, nil, filepath.Join(binDir, "postgres"), "-D", dir, "-p", port,
		"-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200")
	if err != nil {
		return err
	}
	if err := waitListening(ctx, addr, pid, filepath.Join(e.dir, "postgres.log")); err != nil {
		return err
	}
	e.pgURL = fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", addr)
	return nil
}

// preflight sends one request as the load generators will and checks the
// answer, so nothing is measured that does not work: status 200, the
// upstream's body, the security headers; and 401 without the key where the
// target authenticates. It returns the negotiated TLS parameters and the
// security headers seen.
func (e *env) preflight(t target, url, key string) (tlsDesc string, headers []string, err error) {
	pool := x509.NewCertPool()
	pemData, err := os.ReadFile(e.certFile)
	if err != nil {
		return "", nil, err
	}
	pool.AppendCertsFromPEM(pemData)
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool},
			TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
		},
	}
	defer client.CloseIdleConnections()
	get := func(withKey bool) (*http.Response, []byte, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if t.post {
			req, err = http.NewRequest(http.MethodPost, url, strings.NewReader(`{"order":"7f3c9a2e","items":[1,2,3],"note":"bench"}`))
			req.Header.Set("Content-Type", "application/json")
		}
		if err != nil {
			return nil, nil, err
		}
		if withKey {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	resp, body, err := get(true)
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("status %d with the API key: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if len(body) != 100 || !strings.Contains(string(body), "bench-upstream") {
		return "", nil, fmt.Errorf("the body is not the upstream's: %q", body)
	}
	for _, h := range securityHeaders {
		if v := resp.Header.Get(h[0]); v != "" {
			headers = append(headers, h[0]+": "+v)
		} else if t.headers {
			return "", nil, fmt.Errorf("header %s missing", h[0])
		}
	}
	if resp.TLS != nil {
		tlsDesc = tls.VersionName(resp.TLS.Version) + " " + tls.CipherSuiteName(resp.TLS.CipherSuite)
	}
	if t.auth {
		resp, body, err := get(false)
		if err != nil {
			return "", nil, err
		}
		if resp.StatusCode != http.StatusUnauthorized {
			return "", nil, fmt.Errorf("a request without the API key got %d, not 401: authentication is not in the chain: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
	}
	return tlsDesc, headers, nil
}

// ---- targets ---------------------------------------------------------------

func allTargets() []target {
	return []target{
		{name: "direct", desc: "the upstream itself over HTTPS (the ceiling: no proxy)", start: startDirect},
		{name: "nginx", desc: "nginx, headers only", headers: true, start: startNginx(false)},
		{name: "nginx-full", desc: "nginx, headers + API-key map + limit_req per key + buffered access log", headers: true, auth: true, start: startNginx(true)},
		{name: "haproxy", desc: "HAProxy, headers only", headers: true, start: startHAProxy},
		{name: "caddy", desc: "Caddy, headers only", headers: true, start: startCaddy},
		{name: "floor", desc: "bare Go httputil.ReverseProxy, tuned transport, pooled copy buffers, headers-only middleware", headers: true, start: startFloor("tuned", "")},
		{name: "floor-gogc400", desc: "the floor with GOGC=400", extra: true, headers: true, start: startFloor("tuned", "400")},
		{name: "floor-default-transport", desc: "the floor with http.DefaultTransport (2 idle connections per host)", extra: true, headers: true, start: startFloor("default", "")},
		{name: "rampart-headers", desc: "rampart serve, production mode, no auth routes, access log off", headers: true, start: startRampartHeaders("rampart-headers")},
		{name: "rampart-headers-gogc400", desc: "rampart-headers with GOGC=400, to weigh a GC default", extra: true, headers: true, start: startRampartHeaders("rampart-headers-gogc400", "GOGC=400")},
		{name: "rampart-full", desc: "rampart serve: TLS, headers, CORS, API-key auth, per-key rate limit, audit log to file (SQLite store, memory limits)", optional: true, headers: true, auth: true, start: startRampartFull(fullOpts{}, "rampart-full")},
		{name: "rampart-full-post", desc: "rampart-full measured with 50-byte JSON POSTs, each recorded in the audit log before its answer goes out (audit.wait, the default)", optional: true, extra: true, headers: true, auth: true, post: true, start: startRampartFull(fullOpts{}, "rampart-full-post")},
		{name: "rampart-full-redis", desc: "rampart-full with rate limits in Redis (redis-server on the proxy core)", optional: true, extra: true, headers: true, auth: true, start: startRampartFull(fullOpts{redis: true}, "rampart-full-redis")},
		{name: "rampart-full-redis-pg", desc: "rampart-full with rate limits in Redis and the PostgreSQL store (both on the proxy core), as several instances would run", optional: true, extra: true, headers: true, auth: true, start: startRampartFull(fullOpts{redis: true, postgres: true}, "rampart-full-redis-pg")},
	}
}

func startDirect(_ context.Context, e *env) (started, error) {
	return started{pid: e.upstreamPID, url: "https://" + e.upstreamTLS + "/"}, nil
}

func startNginx(full bool) func(context.Context, *env) (started, error) {
	return func(ctx context.Context, e *env) (started, error) {
		name := "nginx"
		if full {
			name = "nginx-full"
		}
		addr, err := freeAddr()
		if err != nil {
			return started{}, err
		}
		prefix := filepath.Join(e.dir, name)
		if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o700); err != nil {
			return started{}, err
		}
		var httpExtra, locExtra, accessLog string
		accessLog = "access_log off;"
		if full {
			httpExtra = fmt.Sprintf(`
    map_hash_bucket_size 256;
    map $http_x_api_key $bench_key {
        default "";
        "%s" "bench";
    }
    limit_req_zone $bench_key zone=perkey:10m rate=1000000r/s;
    limit_req_status 429;
    log_format bench '$remote_addr $bench_key [$time_local] "$request" $status $body_bytes_sent $request_time';`, e.apiKey)
			locExtra = `
            if ($bench_key = "") { return 401; }
            limit_req zone=perkey burst=1000000 nodelay;`
			accessLog = fmt.Sprintf("access_log %s bench buffer=64k flush=1s;", filepath.Join(prefix, "access.log"))
		}
		var hdrs strings.Builder
		for _, h := range securityHeaders {
			fmt.Fprintf(&hdrs, "\n            add_header %s \"%s\" always;", h[0], h[1])
		}
		conf := fmt.Sprintf(`# generated by scripts/bench
worker_processes 1;
daemon off;
master_process on;
user root root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    server_tokens off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;%[3]s
    %[2]s
    upstream up {
        server %[4]s;
        keepalive 256;
        keepalive_requests 1000000;
        keepalive_timeout 90s;
    }
    server {
        listen %[5]s ssl;
        ssl_certificate %[6]s;
        ssl_certificate_key %[7]s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305;
        keepalive_requests 1000000;
        keepalive_timeout 120s;
        location / {%[8]s
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;%[9]s
        }
    }
}
`, prefix, accessLog, httpExtra, e.upstream, addr, e.certFile, e.keyFile, locExtra, hdrs.String())
		path, err := e.write(name+".conf", conf)
		if err != nil {
			return started{}, err
		}
		pid, err := e.startAndWait(ctx, name, nil, addr, "nginx", "-p", prefix, "-c", path)
		return started{pid: pid, url: "https://" + addr + "/", config: conf}, err
	}
}

func startHAProxy(ctx context.Context, e *env) (started, error) {
	addr, err := freeAddr()
	if err != nil {
		return started{}, err
	}
	var hdrs strings.Builder
	for _, h := range securityHeaders {
		fmt.Fprintf(&hdrs, "\n    http-response set-header %s \"%s\"", h[0], h[1])
	}
	conf := fmt.Sprintf(`# generated by scripts/bench
global
    nbthread 1
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305

defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 60s
    timeout http-keep-alive 120s
    option http-keep-alive
    option forwardfor
    http-reuse always

frontend fe
    bind %s ssl crt %s alpn http/1.1%s
    default_backend be

backend be
    server up %s
`, addr, e.pemFile, hdrs.String(), e.upstream)
	path, err := e.write("haproxy.cfg", conf)
	if err != nil {
		return started{}, err
	}
	pid, err := e.startAndWait(ctx, "haproxy", nil, addr, "haproxy", "-db", "-f", path)
	return started{pid: pid, url: "https://" + addr + "/", config: conf}, err
}

func startCaddy(ctx context.Context, e *env) (started, error) {
	addr, err := freeAddr()
	if err != nil {
		return started{}, err
	}
	home := filepath.Join(e.dir, "caddy")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return started{}, err
	}
	var hdrs strings.Builder
	for _, h := range securityHeaders {
		fmt.Fprintf(&hdrs, "\n\t\t%s \"%s\"", h[0], h[1])
	}
	conf := fmt.Sprintf(`# generated by scripts/bench
{
	admin off
	auto_https off
	default_sni localhost
	storage file_system %s
}

https://%s {
	tls %s %s {
		protocols tls1.2 tls1.3
	}
	header {%s
		-Server
	}
	reverse_proxy %s {
		transport http {
			keepalive 90s
			keepalive_idle_conns 256
			keepalive_idle_conns_per_host 256
		}
	}
}
`, filepath.Join(home, "data"), addr, e.certFile, e.keyFile, hdrs.String(), e.upstream)
	path, err := e.write("Caddyfile", conf)
	if err != nil {
		return started{}, err
	}
	env := []string{"HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_CONFIG_HOME=" + home}
	pid, err := e.startAndWait(ctx, "caddy", env, addr, "caddy", "run", "--config", path, "--adapter", "caddyfile")
	return started{pid: pid, url: "https://" + addr + "/", config: conf}, err
}

func startFloor(transport, gogc string) func(context.Context, *env) (started, error) {
	return func(ctx context.Context, e *env) (started, error) {
		addr, err := freeAddr()
		if err != nil {
			return started{}, err
		}
		name := "floor-" + transport
		var env []string
		if gogc != "" {
			env = append(env, "GOGC="+gogc)
			name += "-gogc" + gogc
		}
		args := []string{"-listen", addr, "-upstream", "http://" + e.upstream, "-cert", e.certFile, "-key", e.keyFile, "-transport", transport}
		desc := "bench/cmd/floor " + strings.Join(args, " ")
		if gogc != "" {
			desc = "GOGC=" + gogc + " " + desc
		}
		var prof *profSource
		if e.profile {
			paddr, err := freeAddr()
			if err != nil {
				return started{}, err
			}
			args = append(args, "-pprof", paddr)
			prof = &profSource{url: "https://" + addr + "/", pprof: "http://" + paddr + "/debug/pprof/profile", bin: e.bin("floor")}
		}
		pid, err := e.startAndWait(ctx, name, env, addr, e.bin("floor"), args...)
		return started{pid: pid, url: "https://" + addr + "/", config: desc, prof: prof}, err
	}
}

// rampartBase is the part of the config both rampart targets share: the
// four security headers only (the other defaults are emptied), no access log,
// no plain-HTTP redirect listener.
func (e *env) rampartBase(stateDir, addr, admin string, profiling bool) string {
	mode, debug := "production", ""
	if profiling {
		// pprof on the admin listener is refused in production mode.
		mode, debug = "development", "\n  debug: true"
	}
	return fmt.Sprintf(`# generated by scripts/bench
mode: %s
state_dir: %s
log:
  level: warn
  access: false
server:%s
  listen: %s
  http_listen: ""
  admin_listen: %s
tls:
  cert_file: %s
  key_file: %s
upstream:
  url: http://%s
headers:
  referrer_policy: ""
  permissions_policy: ""
  cross_origin_resource_policy: ""
  x_xss_protection: ""
`, mode, stateDir, debug, addr, admin, e.certFile, e.keyFile, e.upstream)
}

// secretFile writes a fresh secret from `rampart secrets generate`.
func (e *env) secretFile(name string) (string, error) {
	out, err := exec.Command(e.bin("rampart"), "secrets", "generate").Output()
	if err != nil {
		return "", fmt.Errorf("rampart secrets generate: %w", err)
	}
	return e.write(name, strings.TrimSpace(string(out))+"\n")
}

// rampartConf renders a rampart config for a state directory, public and
// admin addresses; profiling switches to development mode with pprof on.
type rampartConf func(state, addr, admin string, profiling bool) string

// startRampart checks and starts one rampart instance; with -profile it
// also starts a development-mode twin with pprof, so the measured instance
// runs exactly the production config.
func (e *env) startRampart(ctx context.Context, name string, conf rampartConf, extraEnv ...string) (started, error) {
	run := func(name string, profiling bool) (started, string, error) {
		addr, err := freeAddr()
		if err != nil {
			return started{}, "", err
		}
		admin, err := freeAddr()
		if err != nil {
			return started{}, "", err
		}
		state := filepath.Join(e.dir, name)
		if err := os.MkdirAll(state, 0o700); err != nil {
			return started{}, "", err
		}
		text := conf(state, addr, admin, profiling)
		path, err := e.write(name+".yaml", text)
		if err != nil {
			return started{}, "", err
		}
		if out, err := exec.Command(e.bin("rampart"), "config", "check", "-c", path).CombinedOutput(); err != nil {
			return started{}, "", fmt.Errorf("rampart config check: %s", strings.TrimSpace(string(out)))
		}
		pid, err := e.startAndWait(ctx, name, extraEnv, addr, e.bin("rampart"), "serve", "-c", path)
		if len(extraEnv) > 0 {
			text = "# environment: " + strings.Join(extraEnv, " ") + "\n" + text
		}
		return started{pid: pid, url: "https://" + addr + "/", config: text}, admin, err
	}
	st, _, err := run(name, false)
	if err != nil || !e.profile {
		return st, err
	}
	twin, admin, err := run(name+"-pprof", true)
	if err != nil {
		return st, fmt.Errorf("profiling twin: %w", err)
	}
	st.prof = &profSource{url: twin.url, pprof: "http://" + admin + "/debug/pprof/profile", bin: e.bin("rampart")}
	return st, nil
}

func startRampartHeaders(name string, extraEnv ...string) func(context.Context, *env) (started, error) {
	return func(ctx context.Context, e *env) (started, error) {
		return e.startRampartHeaders(ctx, name, extraEnv...)
	}
}

func (e *env) startRampartHeaders(ctx context.Context, name string, extraEnv ...string) (started, error) {
	seal, err := e.secretFile(name + "-seal")
	if err != nil {
		return started{}, err
	}
	return e.startRampart(ctx, name, func(state, addr, admin string, profiling bool) string {
		return e.rampartBase(state, addr, admin, profiling) + fmt.Sprintf(`secrets:
  audit_seal_key: file:%s
routes:
  - name: all
    path: /*
`, seal)
	}, extraEnv...)
}

// rampartKey creates the benchmark's API key in the full-stack store, once;
// every target is sent the same key (nginx-full's map accepts it too).
func (e *env) rampartKey(store, pepper string) (string, error) {
	out, err := exec.Command(e.bin("rampart"), "keys", "create", "--store", store, "--pepper-file", pepper,
		"--name", "bench", "--permissions", "read,write", "--json").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("rampart keys create: %s", strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("rampart keys create: %w", err)
	}
	var created map[string]any
	if err := json.Unmarshal(out, &created); err != nil {
		return "", fmt.Errorf("rampart keys create: %w", err)
	}
	for _, k := range []string{"key", "secret", "api_key", "token"} {
		if s, ok := created[k].(string); ok && s != "" {
			return s, nil
		}
	}
	return "", fmt.Errorf("rampart keys create printed no key: %s", out)
}

// fullStack prepares the shared store and pepper of the full-stack targets
// and creates the API key before any target starts, so every target is sent
// the same key.
func (e *env) fullStack() (store, pepper, seal string, err error) {
	dir := filepath.Join(e.dir, "rampart-store")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", "", err
	}
	store = "sqlite://" + filepath.Join(dir, "rampart.db")
	pepper = filepath.Join(e.dir, "rampart-pepper")
	seal = filepath.Join(e.dir, "rampart-full-seal")
	if _, err := os.Stat(pepper); err == nil {
		return store, pepper, seal, nil
	}
	if _, err := e.secretFile("rampart-pepper"); err != nil {
		return "", "", "", err
	}
	if _, err := e.secretFile("rampart-full-seal"); err != nil {
		return "", "", "", err
	}
	key, err := e.rampartKey(store, pepper)
	if err != nil {
		return "", "", "", err
	}
	e.apiKey = key
	return store, pepper, seal, nil
}

// fullOpts choose the full stack's shared-state backends.
type fullOpts struct {
	redis, postgres bool
}

func startRampartFull(o fullOpts, name string) func(context.Context, *env) (started, error) {
	return func(ctx context.Context, e *env) (started, error) {
		store, pepper, seal, err := e.fullStack()
		if err != nil {
			return started{}, err
		}
		key := ""
		if o.postgres {
			if err := e.startPostgres(ctx); err != nil {
				return started{}, err
			}
			store = e.pgURL
			// PostgreSQL listens a moment before it accepts sessions.
			var out []byte
			for try := 0; ; try++ {
				if out, err = exec.CommandContext(ctx, e.bin("rampart"), "migrate", "--store", store).CombinedOutput(); err == nil {
					break
				}
				if try == 40 || ctx.Err() != nil {
					return started{}, fmt.Errorf("rampart migrate: %w: %s", err, out)
				}
				time.Sleep(250 * time.Millisecond)
			}
			if key, err = e.rampartKey(store, pepper); err != nil {
				return started{}, err
			}
		}
		redisConf := ""
		if o.redis {
			if err := e.startRedis(ctx); err != nil {
				return started{}, err
			}
			redisConf = fmt.Sprintf("redis:\n  url: redis://%s/0\n", e.redisAddr)
		}
		st, err := e.startRampart(ctx, name, func(state, addr, admin string, profiling bool) string {
			return e.rampartBase(state, addr, admin, profiling) + fmt.Sprintf(`cors:
  allowed_origins: ["https://app.example.com"]
store:
  url: %s
%ssecrets:
  api_key_pepper: file:%s
  audit_seal_key: file:%s
routes:
  - name: api
    path: /*
    auth: api_key
    permission: by_method
rate_limits:
  rules:
    - name: per-key
      path: /*
      key: api_key
      limit: 1000000/s
audit:
  enabled: true
`, store, redisConf, pepper, seal)
		})
		st.key = key
		return st, err
	}
}
