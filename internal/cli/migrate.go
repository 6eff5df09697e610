package cli

import (
	"fmt"
	"github.com/rampart-security/rampart/internal/store"
	"os"

	"github.com/spf13/cobra"
)

func newMigrateCmd() *cobra.Command {
	var storeURL string
	cmd := &cobra.Command{
		Use:   "migrate [--store URL]",
		Short: "Apply database migrations to the store",
		Long: `Applies the embedded schema migrations not yet recorded in the store's
schema_migrations table. serve applies them at start as well; run this
before a rolling upgrade so every instance finds the schema ready.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if storeURL == "" {
				storeURL = os.Getenv("RAMPART_STORE_URL")
			}
			loc, err := store.ParseURL(storeURL)
			if err != nil {
				return withExitCode(2, err)
			}
			s, err := store.Open(cmd.Context(), storeURL)
			if err != nil {
				return err
			}
			defer s.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "%s store migrated: schema is current\n", loc.Backend)
			return nil
		},
	}
	cmd.Flags().StringVar(&storeURL, "store", "", "store URL: sqlite:///path/rampart.db, a file path, or postgres://... (default $RAMPART_STORE_URL)")
	return cmd
}
