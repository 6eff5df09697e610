package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-security/rampart/internal/admin"
	"github.com/rampart-security/rampart/internal/apikey"
	"github.com/rampart-security/rampart/internal/app"
	"github.com/rampart-security/rampart/internal/secrets"
)

// keysFlags are shared by every keys subcommand.
type keysFlags struct {
	config        string
	store         string
	pepperFile    string
	pepperVersion int
}

func (f *keysFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVarP(&f.config, "config", "c", "", "take the store and the pepper from this rampart config, exactly as serve does (instead of --store and --pepper-file)")
	cmd.PersistentFlags().StringVar(&f.store, "store", "", "store URL: sqlite:///path/rampart.db, a file path, or postgres://... (default $RAMPART_STORE_URL)")
	cmd.PersistentFlags().StringVar(&f.pepperFile, "pepper-file", "", "file holding the key pepper (default $RAMPART_PEPPER); needed by create and rotate")
	cmd.PersistentFlags().IntVar(&f.pepperVersion, "pepper-version", 0, "version number of that pepper (default: derived from the value, as serve does)")
}

func (f *keysFlags) storeURL() string {
	if f.store != "" {
		return f.store
	}
	return os.Getenv("RAMPART_STORE_URL")
}

// keyring loads the pepper from --pepper-file or RAMPART_PEPPER. Commands
// that do not create keys run without one.
func (f *keysFlags) keyring() (*apikey.Keyring, error) {
	var secret []byte
	switch {
	case f.pepperFile != "":
		b, err := os.ReadFile(f.pepperFile)
		if err != nil {
			return nil, fmt.Errorf("read pepper: %w", err)
		}
		secret = bytes.TrimSpace(b)
	case os.Getenv("RAMPART_PEPPER") != "":
		secret = []byte(strings.TrimSpace(os.Getenv("RAMPART_PEPPER")))
	default:
		return nil, nil
	}
	version := f.pepperVersion
	if version == 0 { // as serve numbers a pepper read from a file or a variable
		version = apikey.VersionFromID(secrets.ContentID(secret))
	}
	ring, err := apikey.NewKeyring(apikey.Pepper{Version: version, Secret: secret})
	if err != nil {
		return nil, fmt.Errorf("pepper: %w (generate one with `rampart secrets generate`)", err)
	}
	return ring, nil
}

// manager opens the store and builds a Manager; call the returned close.
func (f *keysFlags) manager(ctx context.Context, needPepper bool) (*admin.Manager, func(), error) {
	if f.config != "" {
		cfg, err := loadConfig(f.config, io.Discard)
		if err != nil {
			return nil, nil, withExitCode(2, err)
		}
		m, closeFn, err := app.OpenKeys(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		return m, func() { _ = closeFn() }, nil
	}
	ring, err := f.keyring()
	if err != nil {
		return nil, nil, withExitCode(2, err)
	}
	if needPepper && ring == nil {
		return nil, nil, withExitCode(2, errors.New("no pepper: give --pepper-file or set RAMPART_PEPPER"))
	}
	s, err := openStore(ctx, f.storeURL())
	if err != nil {
		return nil, nil, err
	}
	m, err := admin.NewManager(admin.ManagerOptions{Store: s, Keyring: ring})
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return m, func() { s.Close() }, nil
}

// cliActor is recorded as created_by for keys made from the command line.
func cliActor() string {
	for _, v := range []string{"USER", "USERNAME", "LOGNAME"} {
		if u := os.Getenv(v); u != "" {
			return "cli:" + u
		}
	}
	return "cli"
}

func newKeysCmd() *cobra.Command {
	f := &keysFlags{}
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list, show, revoke, rotate and review API keys",
		Long: `API key lifecycle and access review.

Keys are shown exactly once, by create and rotate. The store keeps only a
peppered HMAC of each key; list, show and review never print a secret.`,
	}
	f.register(cmd)
	cmd.AddCommand(newKeysCreateCmd(f), newKeysListCmd(f), newKeysShowCmd(f),
		newKeysRevokeCmd(f), newKeysRotateCmd(f), newKeysReviewCmd(f))
	return cmd
}

// parseExpiry accepts a duration ("720h", "90d"), a date (2026-12-31) or
// an RFC 3339 time; empty means no expiry.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if s == "" || s == "never" {
		return time.Time{}, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && n > 0 && fmt.Sprint(n) == days {
			return now.Add(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--expires %q: must be in the future", s)
		}
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--expires %q: want a duration (720h, 90d), a date (2026-12-31) or an RFC 3339 time", s)
}

func newKeysCreateCmd(f *keysFlags) *cobra.Command {
	var name, perms, expires string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create --name NAME --permissions read[,write,admin] [--expires 90d]",
		Short: "Create a key and print it once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := apikey.ParsePermissions(perms)
			if err != nil {
				return withExitCode(2, fmt.Errorf("--permissions: %w", err))
			}
			exp, err := parseExpiry(expires, time.Now())
			if err != nil {
				return withExitCode(2, err)
			}
			m, closeStore, err := f.manager(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer closeStore()
			iss, err := m.Create(cmd.Context(), admin.CreateParams{Name: name, Permissions: p, ExpiresAt: exp, CreatedBy: cliActor()})
			if err != nil {
				if errors.Is(err, admin.ErrInvalid) {
					return withExitCode(2, err)
				}
				return err
			}
			return printIssued(cmd, iss, nil, asJSON)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "what the key is for, e.g. \"billing-service\" (required)")
	cmd.Flags().StringVar(&perms, "permissions", "read", "comma-separated: read, write, admin")
	cmd.Flags().StringVar(&expires, "expires", "", "lifetime (720h, 90d), date or RFC 3339 time; empty: never (review flags it)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

// printIssued prints a new key: the key alone on stdout, so scripts can
// capture it, and the details and the show-once warning on stderr.
func printIssued(cmd *cobra.Command, iss admin.Issued, prev *apikey.Record, asJSON bool) error {
	now := time.Now()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if asJSON {
		v := struct {
			Key      admin.KeyView  `json:"key"`
			APIKey   string         `json:"api_key"`
			Previous *admin.KeyView `json:"previous,omitempty"`
		}{Key: admin.View(iss.Record, now), APIKey: iss.Key.Reveal()}
		if prev != nil {
			pv := admin.View(*prev, now)
			v.Previous = &pv
		}
		return writeJSONTo(out, v)
	}
	fmt.Fprintf(errOut, "created key %s %q with %s permission", iss.Record.ID, iss.Record.Name, iss.Record.Permissions)
	if !iss.Record.ExpiresAt.IsZero() {
		fmt.Fprintf(errOut, ", expires %s", iss.Record.ExpiresAt.Format(time.RFC3339))
	}
	fmt.Fprintln(errOut)
	if prev != nil {
		fmt.Fprintf(errOut, "old key %s keeps working until %s, with a Deprecation header\n", prev.ID, prev.GraceUntil.Format(time.RFC3339))
	}
	fmt.Fprintln(errOut, "store this key now: it is shown only once and cannot be recovered")
	fmt.Fprintln(out, iss.Key.Reveal())
	return nil
}

func writeJSONTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newKeysListCmd(f *keysFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List keys: permissions, age, last use, expiry, state (never a secret)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, closeStore, err := f.manager(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer closeStore()
			recs, err := m.List(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now()
			if asJSON {
				views := make([]admin.KeyView, 0, len(recs))
				for _, r := range recs {
					views = append(views, admin.View(r, now))
				}
				return writeJSONTo(cmd.OutOrStdout(), struct {
					Keys []admin.KeyView `json:"keys"`
				}{views})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tPERMISSIONS\tSTATE\tAGE\tLAST USED\tEXPIRES")
			for _, r := range recs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, printable(r.Name), r.Permissions,
					r.Status(now), ago(now, r.CreatedAt), agoOr(now, r.LastUsedAt, "never"), until(now, r.ExpiresAt))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newKeysShowCmd(f *keysFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one key (never its secret)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, closeStore, err := f.manager(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer closeStore()
			rec, err := m.Show(cmd.Context(), keyIDArg(args[0]))
			if err != nil {
				return err
			}
			return printKey(cmd.OutOrStdout(), rec, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// keyIDArg accepts a key ID, or a whole key pasted by mistake, from which
// only the ID is used.
func keyIDArg(s string) string {
	if k, err := apikey.Parse(s); err == nil {
		return k.ID()
	}
	return s
}

func printKey(w io.Writer, rec apikey.Record, asJSON bool) error {
	now := time.Now()
	if asJSON {
		return writeJSONTo(w, admin.View(rec, now))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("id", rec.ID)
	row("name", printable(rec.Name))
	row("permissions", rec.Permissions.String())
	row("state", rec.Status(now).String())
	row("created", stamp(rec.CreatedAt)+" ("+ago(now, rec.CreatedAt)+" ago)")
	if rec.CreatedBy != "" {
		row("created by", printable(rec.CreatedBy))
	}
	row("expires", until(now, rec.ExpiresAt))
	row("last used", agoOr(now, rec.LastUsedAt, "never"))
	if !rec.RevokedAt.IsZero() {
		row("revoked", stamp(rec.RevokedAt))
	}
	if rec.RotatedFrom != "" {
		row("rotated from", rec.RotatedFrom)
	}
	if !rec.RotatedAt.IsZero() {
		row("rotated", stamp(rec.RotatedAt))
		row("grace until", stamp(rec.GraceUntil))
	}
	return tw.Flush()
}

func newKeysRevokeCmd(f *keysFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key now (every instance refuses it within a second)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, closeStore, err := f.manager(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer closeStore()
			rec, err := m.Revoke(cmd.Context(), keyIDArg(args[0]), cliActor())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked key %s %q at %s\n", rec.ID, printable(rec.Name), stamp(rec.RevokedAt))
			return nil
		},
	}
}

func newKeysRotateCmd(f *keysFlags) *cobra.Command {
	var grace time.Duration
	var expires string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rotate ID [--grace 24h]",
		Short: "Issue a successor; the old key works until the grace period ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, err := parseExpiry(expires, time.Now())
			if err != nil {
				return withExitCode(2, err)
			}
			m, closeStore, err := f.manager(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer closeStore()
			iss, old, err := m.Rotate(cmd.Context(), keyIDArg(args[0]), admin.RotateParams{Grace: grace, ExpiresAt: exp, Actor: cliActor()})
			if err != nil {
				if errors.Is(err, admin.ErrInvalid) {
					return withExitCode(2, err)
				}
				return err
			}
			return printIssued(cmd, iss, &old, asJSON)
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 24*time.Hour, "how long the old key keeps working")
	cmd.Flags().StringVar(&expires, "expires", "", "successor lifetime or date; empty: the old key's lifetime")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newKeysReviewCmd(f *keysFlags) *cobra.Command {
	var unused, expiring int
	var fail, asJSON bool
	cmd := &cobra.Command{
		Use:   "review [--unused-days 90] [--expiring-days 30] [--fail]",
		Short: "Access review: unused, expiring, admin and never-expiring keys",
		Long: `The periodic access review. Lists usable keys unused for --unused-days,
expiring within --expiring-days, holding admin permission, without expiry,
or still in a rotation grace period. With --fail the command exits 1 when
there is any finding, for CI or a scheduled job.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if unused < 0 || expiring < 0 {
				return withExitCode(2, errors.New("--unused-days and --expiring-days must not be negative"))
			}
			m, closeStore, err := f.manager(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer closeStore()
			rv, err := m.Review(cmd.Context(), admin.ReviewParams{UnusedDays: unused, ExpiringDays: expiring})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := writeJSONTo(out, rv); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "access review %s: %d usable keys, %d findings (unused > %d days, expiring < %d days)\n",
					rv.GeneratedAt.Format(time.RFC3339), rv.ActiveKeys, len(rv.Findings), rv.UnusedDays, rv.ExpiringDays)
				if len(rv.Findings) > 0 {
					tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "KIND\tID\tNAME\tDETAIL")
					for _, fd := range rv.Findings {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", fd.Kind, fd.KeyID, printable(fd.Name), fd.Detail)
					}
					if err := tw.Flush(); err != nil {
						return err
					}
				}
			}
			if fail && len(rv.Findings) > 0 {
				return withExitCode(1, nil)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&unused, "unused-days", 90, "flag keys not used for this many days")
	cmd.Flags().IntVar(&expiring, "expiring-days", 30, "flag keys expiring within this many days")
	cmd.Flags().BoolVar(&fail, "fail", false, "exit 1 when there are findings")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printable replaces control characters so a key name cannot rewrite the
// terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// ago renders the time since t coarsely: 45s, 12m, 5h, 3d.
func ago(now, t time.Time) string { return span(now.Sub(t)) }

func agoOr(now, t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return ago(now, t) + " ago"
}

func until(now, t time.Time) string {
	switch {
	case t.IsZero():
		return "never"
	case !t.After(now):
		return "expired " + span(now.Sub(t)) + " ago"
	}
	return "in " + span(t.Sub(now))
}

func span(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
