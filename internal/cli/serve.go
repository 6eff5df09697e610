package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rampart-security/rampart/internal/app"
	"github.com/rampart-security/rampart/internal/config"
)

func newServeCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway",
		Long: `Run the gateway with the configuration file given by --config.

In production mode rampart refuses to start while any checklist rule is broken
(no TLS, weak HSTS, permissive CORS, debug endpoints, a public admin listener,
...) and lists every problem at once. SIGHUP re-reads certificates and secrets
(and audits any other change to the file, which needs a restart); SIGTERM and
SIGINT drain in-flight requests within server.shutdown_timeout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			log, err := app.NewLogger(cfg.Log, cfg.Mode, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, log, path)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", defaultConfigPath(), "configuration file (env RAMPART_CONFIG)")
	return cmd
}

func defaultConfigPath() string {
	if p := os.Getenv("RAMPART_CONFIG"); p != "" {
		return p
	}
	return "rampart.yaml"
}

// loadConfig loads and validates a config file, printing development-mode
// warnings to w and returning every error at once.
func loadConfig(path string, w io.Writer) (config.Config, error) {
	cfg, warnings, err := config.Load(path, os.Environ())
	for _, warn := range warnings {
		fmt.Fprintf(w, "warning: %s (refused in production mode)\n", warn)
	}
	if err != nil {
		return config.Config{}, fmt.Errorf("%s is not valid:\n%s", path, indent(err.Error()))
	}
	return cfg, nil
}

func indent(s string) string {
	return "  - " + strings.ReplaceAll(s, "\n", "\n  - ")
}

// DefaultGCPercent is the garbage collector target serve and demo use when
// GOGC is not set: chosen by measurement (scripts/bench, rampart-headers
// against rampart-headers-gogc400, 5 interleaved repetitions: higher
// throughput and lower CPU per request in every repetition, for about
// 14 MiB more resident memory). Set GOMEMLIMIT in containers so the larger
// heap target yields to a memory limit.
const DefaultGCPercent = 400

// tuneRuntime applies DefaultGCPercent unless the operator chose GOGC.
func tuneRuntime(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}

// serve runs a validated config until ctx ends, reloading on SIGHUP.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, path string) error {
	tuneRuntime(os.Getenv)
	a, err := app.New(ctx, cfg, app.Options{Log: log, ConfigPath: path, Environ: os.Environ()})
	if err != nil {
		return err
	}
	if err := a.Listen(); err != nil {
		_ = a.Close(ctx)
		return err
	}
	return run(ctx, a)
}

func run(ctx context.Context, a *app.App) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.Reload(ctx)
			}
		}
	}()
	return a.Serve(ctx)
}
