package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-security/rampart/internal/app"
	"github.com/rampart-security/rampart/internal/audit"
)

// auditExitProblem is the exit code of `rampart audit verify` when the log
// shows tampering or truncation.
const auditExitProblem = 2

type auditFlags struct {
	config  string
	dir     string
	keyFile string
}

func (f *auditFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "",
		"take the audit directory and keys from this rampart config, derived exactly as serve does (--dir and --key-file override)")
	cmd.Flags().StringVar(&f.dir, "dir", "", "audit log directory (required without --config)")
	cmd.Flags().StringVar(&f.keyFile, "key-file", os.Getenv("RAMPART_AUDIT_KEY_FILE"),
		"YAML key file with seal_keys and encryption_keys (default $RAMPART_AUDIT_KEY_FILE)")
}

// resolve returns the log directory and keys: --dir and --key-file when
// given, otherwise what the config passed with --config names.
func (f *auditFlags) resolve(cmd *cobra.Command) (string, audit.Keys, error) {
	if f.config == "" {
		if f.dir == "" {
			return "", audit.Keys{}, errors.New("--dir or --config is required")
		}
		keys, err := f.keys(cmd)
		return f.dir, keys, err
	}
	cfg, err := loadConfig(f.config, io.Discard)
	if err != nil {
		return "", audit.Keys{}, err
	}
	dir := f.dir
	if dir == "" {
		dir = cfg.AuditDir()
	}
	if f.keyFile != "" {
		keys, err := f.keys(cmd)
		return dir, keys, err
	}
	keys, err := app.AuditKeys(cmd.Context(), cfg)
	if err != nil {
		return "", audit.Keys{}, fmt.Errorf("audit keys from %s: %w", f.config, err)
	}
	return dir, keys, nil
}

func (f *auditFlags) keys(cmd *cobra.Command) (audit.Keys, error) {
	if f.keyFile == "" {
		return audit.Keys{}, nil
	}
	st, err := os.Stat(f.keyFile)
	if err != nil {
		return audit.Keys{}, fmt.Errorf("audit key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is readable by group or others (mode %o)\n", f.keyFile, st.Mode().Perm())
	}
	b, err := os.ReadFile(f.keyFile)
	if err != nil {
		return audit.Keys{}, fmt.Errorf("audit key file: %w", err)
	}
	return audit.ParseKeyFile(b)
}

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, follow, export and prune the tamper-evident audit log",
	}
	cmd.AddCommand(newAuditVerifyCmd(), newAuditTailCmd(), newAuditExportCmd(), newAuditPruneCmd())
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var f auditFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the hash chain, segment seals and prune anchor",
		Long: "Walks every segment in order and reports the first edited, deleted, reordered or missing\n" +
			"record and any truncation. Exit code 0: intact (notes such as a torn tail left by a crash\n" +
			"are printed but are not tampering); 2: a problem was found; 1: the check could not run.\n" +
			"Without keys (--config with secrets.audit_seal_key, or --key-file) only the hash chain\n" +
			"is checked, not the seal signatures.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, keys, err := f.resolve(cmd)
			if err != nil {
				return err
			}
			rep, err := audit.Verify(dir, keys.Seal)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				for _, n := range rep.Notes {
					fmt.Fprintln(out, "note:", n)
				}
				for _, p := range rep.Problems {
					fmt.Fprintln(out, "PROBLEM:", p)
				}
				if rep.OK() {
					fmt.Fprintf(out, "ok: %d records (seq %d to %d) in %d segments\n", rep.Records, rep.First, rep.Next-1, rep.Segments)
				}
			}
			if !rep.OK() {
				p := rep.Problems[0]
				return withExitCode(auditExitProblem, fmt.Errorf("audit log %s: %s", p.Kind, p))
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func newAuditTailCmd() *cobra.Command {
	var f auditFlags
	var last int
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the newest events and follow the log (decrypting with --key-file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, keys, err := f.resolve(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if last == 0 {
				last = -1
			}
			return audit.Tail(ctx, dir, cmd.OutOrStdout(), audit.TailOptions{Keys: keys.Encryption, Last: last})
		},
	}
	f.register(cmd)
	cmd.Flags().IntVarP(&last, "lines", "n", 10, "existing events to print first")
	return cmd
}

func newAuditExportCmd() *cobra.Command {
	var f auditFlags
	var since string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write events as JSON lines, decrypted, for an investigation",
		Long: "Writes every event (with its seq) as one JSON object per line to stdout.\n" +
			"--since takes an RFC 3339 time (2026-01-15T00:00:00Z) or a duration back from now (72h).\n" +
			"Run `rampart audit verify` as well: export does not check the chain.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, keys, err := f.resolve(cmd)
			if err != nil {
				return err
			}
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			return audit.Export(cmd.Context(), dir, cmd.OutOrStdout(), audit.ExportOptions{Since: from, Keys: keys.Encryption})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&since, "since", "", "only events at or after this time (RFC 3339) or this long ago (duration)")
	return cmd
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time or a positive duration", s)
}

func newAuditPruneCmd() *cobra.Command {
	var f auditFlags
	var days int
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove whole sealed segments older than the retention, leaving a signed anchor",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days <= 0 {
				return errors.New("--retention-days must be positive")
			}
			dir, keys, err := f.resolve(cmd)
			if err != nil {
				return err
			}
			if keys.Seal.Empty() {
				return errors.New("prune signs an anchor: a seal key is required (--config with secrets.audit_seal_key, or --key-file with seal_keys)")
			}
			now := time.Now()
			res, err := audit.Prune(dir, keys.Seal, now.Add(-time.Duration(days)*24*time.Hour), func() time.Time { return now })
			if err != nil {
				return err
			}
			msg := "nothing to prune"
			if res.Segments > 0 {
				msg = "pruned " + strconv.Itoa(res.Segments) + " segments; the chain now starts at seq " + strconv.FormatUint(res.Next, 10)
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&days, "retention-days", 0, "keep segments sealed within this many days (rideshare 90, OptiBid 2555)")
	_ = cmd.MarkFlagRequired("retention-days")
	return cmd
}
