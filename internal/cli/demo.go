package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-security/rampart/internal/admin"
	"github.com/rampart-security/rampart/internal/app"
	"github.com/rampart-security/rampart/internal/config"
	"github.com/rampart-security/rampart/internal/demo"
	"github.com/rampart-security/rampart/internal/identity"
	"github.com/rampart-security/rampart/internal/reqinfo"
	"github.com/rampart-security/rampart/internal/verify"
)

type demoFlags struct {
	listen, httpListen, adminListen string
	stateDir                        string
	quiet                           bool
}

func newDemoCmd() *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a sample API behind the gateway, in development mode, and print how to call it",
		Long: `Start a built-in sample API shaped like the rideshare simulation API on loopback
and rampart in front of it in development mode: a self-signed certificate in the
state directory, SQLite and memory state, nothing else installed. Prints working
curl lines and runs until Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:8443", "HTTPS address (a busy port falls back to a free one)")
	cmd.Flags().StringVar(&f.httpListen, "http-listen", "127.0.0.1:8080", "HTTP redirect address")
	cmd.Flags().StringVar(&f.adminListen, "admin-listen", "127.0.0.1:9090", "admin address (health, readiness)")
	cmd.Flags().StringVar(&f.stateDir, "state-dir", defaultDemoStateDir(), "where the demo keeps its certificate and data")
	cmd.Flags().BoolVar(&f.quiet, "quiet", false, "do not print the access log")
	return cmd
}

func defaultDemoStateDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "rampart", "demo")
	}
	return filepath.Join(os.TempDir(), "rampart-demo")
}

// demoConfig is the development-mode configuration the demo runs.
func demoConfig(f demoFlags, upstream string) config.Config {
	cfg := config.Default()
	cfg.Mode = config.ModeDevelopment
	cfg.StateDir = f.stateDir
	cfg.Log.Format = "text"
	cfg.Server.Listen, cfg.Server.HTTPListen, cfg.Server.AdminListen = f.listen, f.httpListen, f.adminListen
	cfg.Server.ShutdownTimeout = 5 * time.Second
	cfg.TLS.SelfSigned = true
	cfg.Upstream.URL = upstream
	cfg.Upstream.HealthPath = "/healthz"
	cfg.CORS.AllowedOrigins = []string{"https://app.example.com"}
	cfg.Routes = []config.Route{
		{Name: "status", Path: "/simulation/status", Methods: []string{"GET"}},
		{Name: "simulation", Path: "/simulation/*", Methods: []string{"GET", "POST"}, Auth: "api_key", Permission: "by_method"},
		{Name: "agents", Path: "/agents", Methods: []string{"GET", "POST"}, BodyLimit: 64 << 10, Auth: "any", Permission: "by_method"},
		{Name: "metrics", Path: "/metrics/*", Methods: []string{"GET"}, Auth: "api_key", Permission: "read"},
		{Name: "ws", Path: "/ws", Methods: []string{"GET"}, WebSocket: true, Auth: "api_key", Permission: "read"},
	}
	// The rideshare checklist's limits.
	cfg.RateLimits.PreAuth = "300/min" // room for the demo's own verify run and the printed lines
	cfg.RateLimits.Rules = []config.RateLimitRule{
		{Name: "simulation", Path: "/simulation/*", Limit: "60/min"},
		{Name: "agents", Path: "/agents", Limit: "100/min"},
		{Name: "metrics", Path: "/metrics/*", Limit: "30/min"},
	}
	cfg.Secrets.RefreshInterval = 0
	cfg.Identity.Enabled = true
	cfg.Identity.BcryptCost = 10 // the demo's one login; production keeps 12
	return cfg
}

// verifyDemo runs `rampart verify` against the demo itself, with a key of
// its own so the printed keys keep their rate-limit budget, and prints the
// summary.
func verifyDemo(ctx context.Context, a *app.App, w io.Writer) error {
	issued, err := a.Keys().Create(ctx, admin.CreateParams{Name: "demo-verify", Permissions: reqinfo.PermRead, CreatedBy: "demo", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(a.SelfSignedCert)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	pub, httpAddr, _ := a.Addrs()
	rep, err := verify.Run(ctx, verify.Options{
		Target:         "https://" + localhostAddr(pub) + "/simulation/status",
		HTTPURL:        "http://" + localhostAddr(httpAddr) + "/simulation/status",
		ProtectedPaths: []string{"/agents", "/metrics/summary"},
		WSPaths:        []string{"/ws"},
		AllowedOrigins: []string{"https://app.example.com"},
		Key:            issued.Key.Reveal(),
		RootCAs:        roots,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nrampart verify %s (%d requests, %s):\n", rep.Target, rep.Requests, rep.Duration.Round(time.Millisecond))
	return verify.WriteSummary(w, rep, false)
}

// demoUser creates the demo's person, with read and write roles, and
// returns the generated password.
func demoUser(ctx context.Context, a *app.App) (string, error) {
	m := a.People()
	if m == nil {
		return "", errors.New("demo: identity is off")
	}
	pw, err := m.GeneratePassword("demo")
	if err != nil {
		return "", err
	}
	_, err = m.Create(ctx, identity.NewUser{Username: "demo", Password: pw, Roles: []string{"read", "write"}})
	return pw, err
}

// demoKeys creates the demo's two keys, read-only and read-write, in its
// fresh store, and returns them for printing.
func demoKeys(ctx context.Context, a *app.App) (read, write string, err error) {
	m := a.Keys()
	if m == nil {
		return "", "", errors.New("demo: no key manager")
	}
	r, err := m.Create(ctx, admin.CreateParams{Name: "demo-read", Permissions: reqinfo.PermRead, CreatedBy: "demo", ExpiresAt: time.Now().Add(24 * time.Hour)})
	if err != nil {
		return "", "", err
	}
	w, err := m.Create(ctx, admin.CreateParams{Name: "demo-write", Permissions: reqinfo.PermRead | reqinfo.PermWrite, CreatedBy: "demo", ExpiresAt: time.Now().Add(24 * time.Hour)})
	if err != nil {
		return "", "", err
	}
	return r.Key.Reveal(), w.Key.Reveal(), nil
}

func runDemo(ctx context.Context, f demoFlags, stdout, stderr io.Writer) error {
	tuneRuntime(os.Getenv)
	api := demo.NewSampleAPI(time.Second, uint64(time.Now().UnixNano()))
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("sample API: %w", err)
	}
	upstream := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = upstream.Serve(upLn) }()
	defer upstream.Close()

	logOut := stderr
	if f.quiet {
		logOut = io.Discard
	}
	cfg := demoConfig(f, "http://"+upLn.Addr().String())
	log, err := app.NewLogger(cfg.Log, cfg.Mode, logOut)
	if err != nil {
		return err
	}
	if _, err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	// Every demo starts from an empty store so no old key lingers.
	if err := os.Remove(filepath.Join(f.stateDir, "rampart.db")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	a, err := app.New(ctx, cfg, app.Options{Log: log})
	if err != nil {
		return err
	}
	if err := a.Listen(); err != nil {
		// A port is taken (another demo, another server): take free ones.
		fmt.Fprintf(stderr, "demo: %v; using free ports instead\n", err)
		_ = a.Close(ctx)
		f.listen, f.httpListen, f.adminListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg = demoConfig(f, cfg.Upstream.URL)
		if a, err = app.New(ctx, cfg, app.Options{Log: log}); err != nil {
			return err
		}
		if err := a.Listen(); err != nil {
			_ = a.Close(ctx)
			return err
		}
	}
	readKey, writeKey, err := demoKeys(ctx, a)
	if err != nil {
		_ = a.Close(ctx)
		return err
	}
	password, err := demoUser(ctx, a)
	if err != nil {
		_ = a.Close(ctx)
		return err
	}
	printDemo(stdout, a, readKey, writeKey, password)
	done := make(chan error, 1)
	go func() { done <- run(ctx, a) }()
	// The listeners are bound, so verify's connections wait in the accept
	// queue until Serve takes them.
	if err := verifyDemo(ctx, a, stdout); err != nil {
		fmt.Fprintf(stdout, "verify: %v\n", err)
	}
	fmt.Fprintln(stdout, "\nCtrl-C stops the demo.")
	err = <-done
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func printDemo(w io.Writer, a *app.App, readKey, writeKey, password string) {
	pub, httpAddr, adminAddr := a.Addrs()
	base := "https://" + localhostAddr(pub)
	cacert := shellQuote(a.SelfSignedCert)
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("rampart demo: a sample rideshare API behind the gateway (development mode)")
	line("")
	line("  gateway   %s", base)
	line("  redirect  http://%s  (plain HTTP only redirects to HTTPS)", localhostAddr(httpAddr))
	line("  admin     http://%s/healthz and /readyz", adminAddr)
	line("  cert      %s  (self-signed; pass it to curl with --cacert)", a.SelfSignedCert)
	line("")
	line("  read key  %s", readKey)
	line("  write key %s", writeKey)
	line("            (shown once; the store keeps only a peppered HMAC)")
	line("  person    demo / %s  (log in at %s/.rampart/ui/login)", password, base)
	line("")
	line("Try:")
	rk, wk := shellQuote("Authorization: Bearer "+readKey), shellQuote("Authorization: Bearer "+writeKey)
	line("  curl --cacert %s %s/simulation/status", cacert, base)
	line("  curl --cacert %s -H %s %s/agents", cacert, rk, base)
	line("  curl --cacert %s -H %s -X POST %s/simulation/start", cacert, wk, base)
	line("  curl --cacert %s -H %s -X POST -H 'Content-Type: application/json' -d '{\"name\":\"driver-9\"}' %s/agents", cacert, wk, base)
	line("  curl --cacert %s -H %s %s/metrics/summary", cacert, rk, base)
	line("  curl --cacert %s -H %s -X POST %s%s    # a single-use WebSocket ticket for /ws?ticket=...", cacert, rk, base, a.TicketPath())
	line("  curl --cacert %s -H 'Content-Type: application/json' -d '{\"username\":\"demo\",\"password\":\"%s\"}' %s/.rampart/login    # a person's access and refresh tokens", cacert, password, base)
	line("  curl --cacert %s -si %s/agents    # 401: no key", cacert, base)
	line("  curl --cacert %s -si -H %s -X POST %s/simulation/stop    # 403: the read key cannot write", cacert, rk, base)
	line("  curl --cacert %s -si %s/simulation/status    # the security headers", cacert, base)
	line("  curl -si http://%s/simulation/status          # redirected to HTTPS", localhostAddr(httpAddr))
	line("  curl -s http://%s/metrics | grep rampart_http    # Prometheus metrics", adminAddr)
	fmt.Fprint(w, b.String())
}

// localhostAddr rewrites a loopback address to localhost:port, the name the
// demo certificate is issued for.
func localhostAddr(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return "localhost:" + port
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:=@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
