package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rampart-security/rampart/internal/config"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect configuration",
	}
	var path string
	check := &cobra.Command{
		Use:   "check",
		Short: "Load a config file and print every problem at once",
		Long: `Load a config file with its RAMPART_* overrides and validate it as serve would.
Exits 0 when the config is valid (development-mode warnings are printed but do
not fail), 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path, cmd.OutOrStdout())
			if err != nil {
				return withExitCode(1, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%s mode, %d routes)\n", path, cfg.Mode, len(cfg.Routes))
			return nil
		},
	}
	check.Flags().StringVarP(&path, "config", "c", defaultConfigPath(), "configuration file")
	env := &cobra.Command{
		Use:   "env",
		Short: "List the RAMPART_* environment variables that override config keys",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			for _, n := range config.EnvNames() {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
		},
	}
	cmd.AddCommand(check, env)
	return cmd
}
