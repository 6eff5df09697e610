package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-security/rampart/internal/identity"
)

// usersFlags are shared by every users subcommand.
type usersFlags struct {
	store      string
	bcryptCost int
	minLength  int
	resetTTL   time.Duration
}

func (f *usersFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.store, "store", "", "store URL: sqlite:///path/rampart.db, a file path, or postgres://... (default $RAMPART_STORE_URL)")
	cmd.PersistentFlags().IntVar(&f.bcryptCost, "bcrypt-cost", identity.DefaultBcryptCost, "bcrypt cost for new passwords")
	cmd.PersistentFlags().IntVar(&f.minLength, "min-password-length", identity.DefaultMinPasswordLength, "minimum password length")
}

func (f *usersFlags) storeURL() string {
	if f.store != "" {
		return f.store
	}
	return os.Getenv("RAMPART_STORE_URL")
}

// manager opens the store and builds an identity.Manager; call the
// returned close.
// withManager opens the store for a subcommand, runs it with the account
// manager, and closes the store.
func (f *usersFlags) withManager(run func(cmd *cobra.Command, args []string, m *identity.Manager) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		m, closeStore, err := f.manager(cmd.Context())
		if err != nil {
			return err
		}
		defer closeStore()
		return run(cmd, args, m)
	}
}

func (f *usersFlags) manager(ctx context.Context) (*identity.Manager, func(), error) {
	s, err := openStore(ctx, f.storeURL())
	if err != nil {
		return nil, nil, err
	}
	is, ok := s.(identity.Store)
	if !ok {
		s.Close()
		return nil, nil, errors.New("this store backend does not keep users")
	}
	m, err := identity.NewManager(identity.ManagerOptions{Store: is, BcryptCost: f.bcryptCost,
		Policy: identity.PasswordPolicy{MinLength: f.minLength}, ResetTTL: f.resetTTL})
	if err != nil {
		s.Close()
		return nil, nil, withExitCode(2, err)
	}
	return m, func() { s.Close() }, nil
}

// userErr gives a missing user exit code 3, like a missing key.
func userErr(err error) error {
	if errors.Is(err, identity.ErrNotFound) {
		return withExitCode(3, err)
	}
	return err
}

func newUsersCmd() *cobra.Command {
	f := &usersFlags{}
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Create, list, lock, unlock, reset, export and delete people",
		Long: `Accounts of the people who log in at /.rampart/.

Passwords are stored as bcrypt hashes. create prints a generated password
once unless --password-stdin gives one; reset-password prints a one-time
reset token. export prints everything Rampart stores about a person as JSON
(GDPR access); delete erases it (GDPR erasure).`,
	}
	f.register(cmd)
	cmd.AddCommand(newUsersCreateCmd(f), newUsersListCmd(f),
		newUsersStatusCmd(f, "lock", "Lock an account until unlocked and end its sessions"),
		newUsersStatusCmd(f, "unlock", "Unlock an account and clear failed-login lockout"),
		newUsersStatusCmd(f, "disable", "Disable an account and end its sessions"),
		newUsersRolesCmd(f), newUsersResetMFACmd(f), newUsersResetPasswordCmd(f), newUsersExportCmd(f), newUsersDeleteCmd(f))
	return cmd
}

func newUsersCreateCmd(f *usersFlags) *cobra.Command {
	var name, email, roles string
	var fromStdin, asJSON bool
	cmd := &cobra.Command{
		Use:   "create --username NAME [--email ADDR] [--roles read,write,admin] [--password-stdin]",
		Short: "Create a user; prints a generated password once",
		Args:  cobra.NoArgs,
		RunE: f.withManager(func(cmd *cobra.Command, _ []string, m *identity.Manager) error {
			uname, err := identity.CanonicalUsername(name)
			if err != nil {
				return withExitCode(2, err)
			}
			var password string
			generated := !fromStdin
			if fromStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return withExitCode(2, fmt.Errorf("read password from stdin: %w", err))
				}
				password = strings.TrimRight(line, "\r\n")
			} else if password, err = m.GeneratePassword(uname); err != nil {
				return err
			}
			var rs []string
			if roles != "" {
				rs = strings.Split(roles, ",")
			}
			u, err := m.Create(cmd.Context(), identity.NewUser{Username: uname, Email: email, Password: password, Roles: rs})
			switch {
			case errors.Is(err, identity.ErrConflict):
				return withExitCode(2, fmt.Errorf("user %s already exists", uname))
			case errors.Is(err, identity.ErrInvalid), errors.Is(err, identity.ErrWeakPassword):
				return withExitCode(2, err)
			case err != nil:
				return err
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if asJSON {
				v := struct {
					ID       string   `json:"id"`
					Username string   `json:"username"`
					Roles    []string `json:"roles"`
					Password string   `json:"password,omitempty"`
				}{ID: u.ID, Username: u.Username, Roles: u.Roles}
				if generated {
					v.Password = password
				}
				return writeJSONTo(out, v)
			}
			fmt.Fprintf(errOut, "created user %s (%s) with roles %s\n", u.Username, u.ID, strings.Join(u.Roles, ","))
			if generated {
				fmt.Fprintln(errOut, "the generated password is shown only once")
				fmt.Fprintln(out, password)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&name, "username", "", "login name: a-z, 0-9, . _ - @ (required)")
	cmd.Flags().StringVar(&email, "email", "", "e-mail address (kept for export; nothing is sent)")
	cmd.Flags().StringVar(&roles, "roles", "read", "comma-separated roles: read, write, admin")
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin instead of generating one")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("username")
	return cmd
}

// UserView is a user as list prints it: never a hash or secret.
type userView struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	Email       string     `json:"email"`
	Status      string     `json:"status"`
	Roles       []string   `json:"roles"`
	MFA         bool       `json:"mfa"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLoginAt *time.Time `json:"last_login_at"`
	LockedUntil *time.Time `json:"locked_until,omitempty"`
}

func newUsersListCmd(f *usersFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users: status, roles, MFA, last login (never a secret)",
		Args:  cobra.NoArgs,
		RunE: f.withManager(func(cmd *cobra.Command, _ []string, m *identity.Manager) error {
			us, err := m.List(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now()
			if asJSON {
				views := []userView{}
				for _, u := range us {
					v := userView{ID: u.ID, Username: u.Username, Email: u.Email, Status: string(u.Status),
						Roles: u.Roles, MFA: u.MFAEnabled(), CreatedAt: u.CreatedAt}
					if !u.LastLoginAt.IsZero() {
						v.LastLoginAt = &u.LastLoginAt
					}
					if now.Before(u.LockedUntil) {
						v.LockedUntil = &u.LockedUntil
					}
					views = append(views, v)
				}
				return writeJSONTo(cmd.OutOrStdout(), struct {
					Users []userView `json:"users"`
				}{views})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USERNAME\tID\tSTATUS\tROLES\tMFA\tLAST LOGIN\tCREATED")
			for _, u := range us {
				status := string(u.Status)
				if u.Status == identity.StatusActive && now.Before(u.LockedUntil) {
					status = "locked out until " + u.LockedUntil.Format(time.RFC3339)
				}
				mfa := "no"
				if u.MFAEnabled() {
					mfa = "totp"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(u.Username), u.ID, status,
					strings.Join(u.Roles, ","), mfa, agoOr(now, u.LastLoginAt, "never"), ago(now, u.CreatedAt))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newUsersStatusCmd(f *usersFlags, verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " USERNAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: f.withManager(func(cmd *cobra.Command, args []string, m *identity.Manager) error {
			var err error
			switch verb {
			case "lock":
				err = m.Lock(cmd.Context(), args[0])
			case "unlock":
				err = m.Unlock(cmd.Context(), args[0])
			default:
				err = m.SetStatus(cmd.Context(), args[0], identity.StatusDisabled)
			}
			if err != nil {
				return userErr(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%sed %s\n", strings.TrimSuffix(verb, "e"), args[0])
			return nil
		}),
	}
}

func newUsersRolesCmd(f *usersFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "roles USERNAME ROLE[,ROLE...]",
		Short: "Replace a user's roles (read, write, admin) and end their sessions",
		Args:  cobra.ExactArgs(2),
		RunE: f.withManager(func(cmd *cobra.Command, args []string, m *identity.Manager) error {
			if err := m.SetRoles(cmd.Context(), args[0], strings.Split(args[1], ",")); err != nil {
				if errors.Is(err, identity.ErrInvalid) {
					return withExitCode(2, err)
				}
				return userErr(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "roles of %s set to %s; their sessions ended\n", args[0], args[1])
			return nil
		}),
	}
}

func newUsersResetMFACmd(f *usersFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "reset-mfa USERNAME",
		Short: "Remove a user's TOTP secret and backup codes and end their sessions",
		Args:  cobra.ExactArgs(1),
		RunE: f.withManager(func(cmd *cobra.Command, args []string, m *identity.Manager) error {
			if err := m.ResetMFA(cmd.Context(), args[0]); err != nil {
				return userErr(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "MFA of %s removed; they enrol again after their next login\n", args[0])
			return nil
		}),
	}
}

func newUsersResetPasswordCmd(f *usersFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reset-password USERNAME [--ttl 1h]",
		Short: "Print a one-time password reset token",
		Long: `Print a one-time token with which the person sets a new password:

  POST /.rampart/password/reset {"token": "<token>", "new_password": "..."}

Give it to them over a channel you trust; Rampart sends no e-mail or SMS.
Using it ends all their sessions and clears a failed-login lockout.`,
		Args: cobra.ExactArgs(1),
		RunE: f.withManager(func(cmd *cobra.Command, args []string, m *identity.Manager) error {
			tok, exp, err := m.ResetPasswordToken(cmd.Context(), args[0])
			if err != nil {
				return userErr(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "reset token for %s, valid until %s, usable once\n", args[0], exp.Format(time.RFC3339))
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		}),
	}
	cmd.Flags().DurationVar(&f.resetTTL, "ttl", identity.DefaultResetTTL, "how long the token stays valid")
	return cmd
}

func newUsersExportCmd(f *usersFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export USERNAME [-o FILE]",
		Short: "Print everything stored about a user as JSON (GDPR access request)",
		Args:  cobra.ExactArgs(1),
		RunE: f.withManager(func(cmd *cobra.Command, args []string, m *identity.Manager) error {
			ex, err := m.Export(cmd.Context(), args[0])
			if err != nil {
				return userErr(err)
			}
			if output == "" || output == "-" {
				return writeJSONTo(cmd.OutOrStdout(), ex)
			}
			file, err := os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if err := writeJSONTo(file, ex); err != nil {
				file.Close()
				return fmt.Errorf("export: %w", err)
			}
			if err := file.Close(); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", output)
			return nil
		}),
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this new file (mode 0600) instead of stdout")
	return cmd
}

func newUsersDeleteCmd(f *usersFlags) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete USERNAME --yes",
		Short: "Erase a user with their sessions, tokens and MFA data (GDPR erasure)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return withExitCode(2, errors.New("delete erases the user for good; add --yes to confirm"))
			}
			m, closeStore, err := f.manager(cmd.Context())
			if err != nil {
				return err
			}
			defer closeStore()
			if err := m.Delete(cmd.Context(), args[0]); err != nil {
				return userErr(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "deleted %s and everything stored about them\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the erasure")
	return cmd
}
