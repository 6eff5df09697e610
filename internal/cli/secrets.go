package cli

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/rampart-security/rampart/internal/secrets"
)

func newSecretsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Secret utilities",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newSecretsGenerateCmd(rand.Reader))
	return cmd
}

func newSecretsGenerateCmd(random io.Reader) *cobra.Command {
	var n int
	var format string
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Print a strong random secret (the replacement for openssl rand -hex 32)",
		Long: `Print a random secret read from the operating system's CSPRNG.

Store it in a secrets manager and point rampart at it, e.g.
  aws secretsmanager create-secret --name rampart/pepper --secret-string "$(rampart secrets generate)"
and in rampart.yaml: aws-sm:rampart/pepper`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 16 || n > 1024 {
				return withExitCode(2, fmt.Errorf("--bytes %d: want 16 to 1024", n))
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(random, b); err != nil {
				return fmt.Errorf("read random bytes: %w", err)
			}
			var s string
			switch format {
			case "hex":
				s = hex.EncodeToString(b)
			case "base64url":
				s = base64.RawURLEncoding.EncodeToString(b)
			default:
				return withExitCode(2, fmt.Errorf("--format %q: want hex or base64url", format))
			}
			if n < secrets.MinBytes {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %d bytes is below the %d rampart requires for its own keys in production\n", n, secrets.MinBytes)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), s)
			return err
		},
	}
	cmd.Flags().IntVar(&n, "bytes", secrets.MinBytes, "number of random bytes")
	cmd.Flags().StringVar(&format, "format", "hex", "output encoding: hex or base64url")
	return cmd
}
