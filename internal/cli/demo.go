package cli

import (
	"context"
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

	"github.com/rampart-security/rampart/internal/app"
	"github.com/rampart-security/rampart/internal/config"
	"github.com/rampart-security/rampart/internal/demo"
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
		{Name: "simulation", Path: "/simulation/*", Methods: []string{"GET", "POST"}},
		{Name: "agents", Path: "/agents", Methods: []string{"GET", "POST"}, BodyLimit: 64 << 10},
		{Name: "metrics", Path: "/metrics/*", Methods: []string{"GET"}},
		{Name: "ws", Path: "/ws", Methods: []string{"GET"}, WebSocket: true},
	}
	return cfg
}

func runDemo(ctx context.Context, f demoFlags, stdout, stderr io.Writer) error {
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
	a, err := app.New(cfg, app.Options{Log: log})
	if err != nil {
		return err
	}
	if err := a.Listen(); err != nil {
		// A port is taken (another demo, another server): take free ones.
		fmt.Fprintf(stderr, "demo: %v; using free ports instead\n", err)
		f.listen, f.httpListen, f.adminListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg = demoConfig(f, cfg.Upstream.URL)
		if a, err = app.New(cfg, app.Options{Log: log}); err != nil {
			return err
		}
		if err := a.Listen(); err != nil {
			return err
		}
	}
	printDemo(stdout, a)
	err = run(ctx, a)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func printDemo(w io.Writer, a *app.App) {
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
	line("Try:")
	line("  curl --cacert %s %s/simulation/status", cacert, base)
	line("  curl --cacert %s -X POST %s/simulation/start", cacert, base)
	line("  curl --cacert %s %s/agents", cacert, base)
	line("  curl --cacert %s -X POST -H 'Content-Type: application/json' -d '{\"name\":\"driver-9\"}' %s/agents", cacert, base)
	line("  curl --cacert %s %s/metrics/summary", cacert, base)
	line("  curl --cacert %s -si %s/simulation/status    # the security headers", cacert, base)
	line("  curl -si http://%s/simulation/status          # redirected to HTTPS", localhostAddr(httpAddr))
	line("")
	line("Ctrl-C stops the demo.")
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
