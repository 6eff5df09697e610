package cli

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rampart-security/rampart/internal/verify"
)

// newVerifyCmd is `rampart verify URL`, optionally told what to expect by
// the deployment's own rampart.yaml.
func newVerifyCmd() *cobra.Command { return newVerifyCmdWith(verifyOptionsFromConfig) }

// verifyOptionsFromConfig derives what verify should expect from a rampart
// config: routes that need a credential must refuse without one, WebSocket
// routes must require a ticket, the first rate-limit rule with an exact or
// prefix path is probed, and the CORS allowlist is the intended one.
func verifyOptionsFromConfig(file string, o *verify.Options) error {
	cfg, err := loadConfig(file, io.Discard)
	if err != nil {
		return err
	}
	for _, r := range cfg.Routes {
		if r.Auth == "" || r.Auth == "none" {
			continue
		}
		p := strings.TrimSuffix(r.Path, "/*")
		if p == "" {
			p = "/"
		}
		if r.WebSocket {
			o.WSPaths = append(o.WSPaths, p)
		} else {
			o.ProtectedPaths = append(o.ProtectedPaths, p)
		}
	}
	o.WSTicketPath = cfg.WebSocket.TicketPath
	o.AllowedOrigins = cfg.CORS.AllowedOrigins
	if rules, err := cfg.LimitRules(); err == nil {
		for i, r := range cfg.RateLimits.Rules {
			if r.Path != "" && !strings.Contains(strings.TrimSuffix(r.Path, "/*"), "*") && len(r.Methods) == 0 {
				o.RateLimit = verify.RateLimit{Path: strings.TrimSuffix(r.Path, "/*"), Limit: rules[i].Limit.Capacity()}
				break
			}
		}
	}
	return nil
}

// newVerifyCmdWith adds --config/-c when fromConfig is given: it fills the
// options (protected routes, WebSocket paths, a rate limit, allowed
// origins) from a rampart.yaml before the flags that were set explicitly
// override them.
func newVerifyCmdWith(fromConfig func(file string, o *verify.Options) error) *cobra.Command {
	var (
		o          verify.Options
		configFile string
		keyFile    string
		caFile     string
		format     string
		failOn     string
		verbose    bool
		noColor    bool
	)
	cmd := &cobra.Command{
		Use:   "verify URL",
		Short: "Audit a live deployment (ours or anyone's) against the production checklists",
		Long: `Audit a live HTTPS deployment: TLS versions, suites and certificate, the
HTTP to HTTPS redirect and HSTS, security headers, CORS (a battery of
hostile origins), cookies, authentication, WebSocket tickets, rate limits,
request size limits and exposed files or debug endpoints. What cannot be
seen from outside is listed as manual with the exact thing to confirm.

Requests are bounded: every check states its maximum, at most --concurrency
are in flight, and the total is printed. Checks that need an input you did
not give (protected paths, a key, a rate limit) are skipped with the reason.

Exit status: 0 when no check failed at or above --fail-on, 1 when one did,
2 when the run itself failed (bad flags, target unreachable).
Checks, scoring and output schemas: docs/verify.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := verify.ParseFormat(format)
			if err != nil {
				return withExitCode(2, fmt.Errorf("--format: %w", err))
			}
			threshold := verify.Severity(-1)
			if failOn != "none" {
				if threshold, err = verify.ParseSeverity(failOn); err != nil {
					return withExitCode(2, fmt.Errorf("--fail-on: %w", err))
				}
			}
			opts := verify.Options{}
			if configFile != "" {
				if err := fromConfig(configFile, &opts); err != nil {
					return withExitCode(2, fmt.Errorf("--config: %w", err))
				}
			}
			mergeFlags(cmd, &opts, &o)
			opts.Target = args[0]
			if keyFile != "" {
				key, err := readKeyFile(keyFile)
				if err != nil {
					return withExitCode(2, err)
				}
				opts.Key = key
			}
			if caFile != "" {
				pool, err := loadCAFile(caFile)
				if err != nil {
					return withExitCode(2, err)
				}
				opts.RootCAs = pool
			}
			stderr := cmd.ErrOrStderr()
			if f == verify.FormatText && isTerminal(stderr) {
				opts.Progress = func(done, total int, r verify.Result) {
					fmt.Fprintf(stderr, "\r\x1b[K[%d/%d] %s %s", done, total, r.ID, r.Status)
				}
			}
			rep, err := verify.Run(cmd.Context(), opts)
			if opts.Progress != nil {
				fmt.Fprint(stderr, "\r\x1b[K")
			}
			if err != nil {
				return withExitCode(2, err)
			}
			out := cmd.OutOrStdout()
			color := !noColor && os.Getenv("NO_COLOR") == "" && isTerminal(out)
			if err := verify.Write(out, rep, f, verify.TextOptions{Color: color, Verbose: verbose}); err != nil {
				return withExitCode(2, err)
			}
			if threshold >= 0 && rep.Failed(threshold) {
				return withExitCode(1, nil)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	if fromConfig != nil {
		fl.StringVarP(&configFile, "config", "c", "", "derive protected routes, WebSocket paths, a rate limit and allowed origins from this rampart.yaml")
	}
	fl.StringVar(&o.HTTPURL, "http-url", "", "plain-HTTP address for the redirect check (default http://HOST/ when the target uses port 443)")
	fl.StringSliceVar(&o.ProtectedPaths, "protected", nil, "path that must refuse requests without valid credentials (repeatable)")
	fl.StringSliceVar(&o.WSPaths, "ws", nil, "WebSocket path that must require a ticket (repeatable)")
	fl.StringVar(&o.WSTicketPath, "ws-ticket-path", verify.DefaultTicketPath, "endpoint that issues WebSocket tickets (POST with the key)")
	fl.StringVar(&o.RateLimit.Path, "rate-limit-path", "", "rate-limited path to probe with up to limit+1 GETs")
	fl.IntVar(&o.RateLimit.Limit, "rate-limit", 0, "requests the rate-limited path allows per window (0: skip the rate-limit checks)")
	fl.StringSliceVar(&o.AllowedOrigins, "allowed-origin", nil, "origin the deployment means to allow; look-alikes of it are tried (repeatable)")
	fl.StringSliceVar(&o.CookiePaths, "cookie-path", nil, "extra path fetched for its Set-Cookie headers (repeatable)")
	fl.StringVar(&keyFile, "key-file", "", "file holding a valid API key for the checks that need one (never printed)")
	fl.StringVar(&o.KeyHeader, "key-header", "", `header carrying the key: "Authorization" (Bearer) or a name such as X-API-Key (default: both)`)
	fl.BoolVar(&o.Insecure, "insecure", false, "accept an untrusted certificate (self-signed targets such as rampart demo)")
	fl.StringVar(&caFile, "ca-file", "", "PEM file of extra CA certificates to trust for the chain check")
	fl.IntVar(&o.MaxRequests, "max-requests", verify.DefaultMaxRequests, "most requests the rate-limit check may send")
	fl.IntVar(&o.Concurrency, "concurrency", verify.DefaultConcurrency, "most requests in flight at once")
	fl.DurationVar(&o.Timeout, "timeout", verify.DefaultTimeout, "timeout of each request")
	fl.StringVar(&format, "format", "text", "output: text, json, sarif, junit or markdown")
	fl.StringVar(&failOn, "fail-on", "high", "exit 1 when a check fails at this severity or above: info, low, medium, high, critical or none")
	fl.BoolVarP(&verbose, "verbose", "v", false, "text output: show evidence for every check")
	fl.BoolVar(&noColor, "no-color", false, "text output: no colours even on a terminal")
	return cmd
}

// mergeFlags copies the flags the user set over opts (which may come from
// a config file); unset flags keep the config's values, or the flag default
// when the config has none.
func mergeFlags(cmd *cobra.Command, opts, fl *verify.Options) {
	set := func(name string) bool { return cmd.Flags().Changed(name) }
	pick := func(name string, apply func()) {
		if set(name) {
			apply()
		}
	}
	pick("http-url", func() { opts.HTTPURL = fl.HTTPURL })
	pick("protected", func() { opts.ProtectedPaths = fl.ProtectedPaths })
	pick("ws", func() { opts.WSPaths = fl.WSPaths })
	pick("rate-limit-path", func() { opts.RateLimit.Path = fl.RateLimit.Path })
	pick("rate-limit", func() { opts.RateLimit.Limit = fl.RateLimit.Limit })
	pick("allowed-origin", func() { opts.AllowedOrigins = fl.AllowedOrigins })
	pick("cookie-path", func() { opts.CookiePaths = fl.CookiePaths })
	pick("key-header", func() { opts.KeyHeader = fl.KeyHeader })
	pick("insecure", func() { opts.Insecure = fl.Insecure })
	if set("ws-ticket-path") || opts.WSTicketPath == "" {
		opts.WSTicketPath = fl.WSTicketPath
	}
	if set("max-requests") || opts.MaxRequests == 0 {
		opts.MaxRequests = fl.MaxRequests
	}
	if set("concurrency") || opts.Concurrency == 0 {
		opts.Concurrency = fl.Concurrency
	}
	if set("timeout") || opts.Timeout == 0 {
		opts.Timeout = fl.Timeout
	}
}

func readKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--key-file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("--key-file %s: empty", path)
	}
	if strings.ContainsAny(key, "\r\n") {
		return "", fmt.Errorf("--key-file %s: more than one line", path)
	}
	return key, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("--ca-file: no PEM certificate found")
	}
	return pool, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
