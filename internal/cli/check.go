package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rampart-security/rampart/internal/check"
)

// newCheckCmd is `rampart check` with the generic config checks.
func newCheckCmd() *cobra.Command { return newCheckCmdWith(nil) }

// newCheckCmdWith lets the config file be checked by configCheck (typed
// validation) instead of check.Config; nil keeps check.Config.
func newCheckCmdWith(configCheck func(file string, data []byte) ([]check.Finding, error)) *cobra.Command {
	var configFile, format, failOn string
	cmd := &cobra.Command{
		Use:   "check [-c rampart.yaml] [FILES or DIRECTORIES...]",
		Short: "Statically check the app's .env, compose, Kubernetes and dependency files and rampart's config",
		Long: `Check the protected app's .env files, docker-compose files, Kubernetes
manifests, requirements.txt and package.json (and rampart's config with -c)
for default or weak secrets, secrets in plain environment variables, debug
flags, permissive CORS, database and Redis connections without TLS or
password, in-memory rate limiting and unpinned dependencies.

Directories are searched recursively (templates such as .env.example are
skipped). With no arguments and no -c, the current directory is checked.

Exit status: 0 when no finding is at or above --fail-on, 1 when one is,
2 when a file cannot be read or parsed. Check IDs: docs/check.md.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			threshold := check.Severity(0)
			if failOn != "none" {
				s, err := check.ParseSeverity(failOn)
				if err != nil {
					return withExitCode(2, fmt.Errorf("--fail-on: %w", err))
				}
				threshold = s
			}
			if format != "text" && format != "json" {
				return withExitCode(2, fmt.Errorf("--format %q: want text or json", format))
			}
			findings, err := check.Run(check.Options{ConfigFile: configFile, Paths: args, ConfigCheck: configCheck})
			if err != nil {
				return withExitCode(2, err)
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				err = check.WriteJSON(out, findings)
			} else {
				err = check.WriteText(out, findings)
			}
			if err != nil {
				return err
			}
			if threshold != 0 && check.AtOrAbove(findings, threshold) {
				return withExitCode(1, nil)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&configFile, "config", "c", "", "rampart config file to check")
	cmd.Flags().StringVar(&format, "format", "text", "output: text or json")
	cmd.Flags().StringVar(&failOn, "fail-on", "low", "exit 1 when a finding is at or above: "+strings.Join([]string{"low", "medium", "high", "critical", "none"}, "|"))
	return cmd
}
